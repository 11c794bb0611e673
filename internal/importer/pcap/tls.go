package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// maxHello bounds the bytes collected for one ClientHello (records
// included). Hellos with post-quantum key shares are about 2 KiB.
const maxHello = 64 << 10

// clientHello is what pilotwire keeps of a TLS ClientHello.
type clientHello struct {
	sni     string
	alpn    []string
	version uint16 // highest version offered (supported_versions, else legacy)
}

// tlsCollector gathers the first bytes of a client stream, record after
// record, until it holds a whole ClientHello handshake message.
type tlsCollector struct {
	buf []byte
}

func (t *tlsCollector) reset() { t.buf = t.buf[:0] }

var errNotHello = errors.New("not a TLS ClientHello")

// add appends stream bytes. done is set when no more bytes are needed:
// with the hello, or with nil when the stream is not a ClientHello.
func (t *tlsCollector) add(data []byte) (h *clientHello, done bool, err error) {
	room := maxHello - len(t.buf)
	if len(data) > room {
		data = data[:room]
	}
	t.buf = append(t.buf, data...)
	msg, complete, err := handshakeFromRecords(t.buf)
	if err != nil {
		return nil, true, err
	}
	if !complete {
		if len(t.buf) >= maxHello {
			return nil, true, errors.New("ClientHello larger than 64 KiB")
		}
		return nil, false, nil
	}
	h, err = parseClientHello(msg)
	if err != nil {
		return nil, true, err
	}
	return h, true, nil
}

// handshakeFromRecords joins the handshake-record fragments at the start of
// b and reports whether they hold a whole first handshake message.
func handshakeFromRecords(b []byte) (msg []byte, complete bool, err error) {
	var hs []byte
	for len(b) >= 5 {
		if b[0] != 22 || b[1] != 3 {
			return nil, false, errNotHello
		}
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if len(b) < 5+n {
			break
		}
		if hs == nil && len(b) >= 5+n && n >= 4 {
			// The usual case: the whole message in the first record.
			if need := 4 + (int(b[6])<<16 | int(b[7])<<8 | int(b[8])); need <= n {
				return b[5 : 5+need], true, nil
			}
		}
		hs = append(hs, b[5:5+n]...)
		b = b[5+n:]
		if len(hs) >= 4 {
			need := 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
			if len(hs) >= need {
				return hs[:need], true, nil
			}
		}
	}
	return nil, false, nil
}

// parseClientHello parses a handshake message that should be a
// ClientHello.
func parseClientHello(msg []byte) (*clientHello, error) {
	if len(msg) < 4 || msg[0] != 1 {
		return nil, errNotHello
	}
	s := reader8{b: msg[4:]}
	legacy := s.u16()
	s.skip(32)      // random
	s.skip(s.u8())  // session id
	s.skip(s.u16()) // cipher suites
	s.skip(s.u8())  // compression methods
	if s.bad {
		return nil, fmt.Errorf("ClientHello: %w", errShort)
	}
	h := &clientHello{version: uint16(legacy)}
	if len(s.b) == 0 {
		return h, nil // no extensions
	}
	ext := reader8{b: s.bytes(s.u16())}
	if s.bad {
		return nil, fmt.Errorf("ClientHello extensions: %w", errShort)
	}
	for len(ext.b) > 0 && !ext.bad {
		typ := ext.u16()
		body := reader8{b: ext.bytes(ext.u16())}
		if ext.bad {
			break
		}
		switch typ {
		case 0: // server_name
			list := reader8{b: body.bytes(body.u16())}
			for len(list.b) > 0 && !list.bad {
				nameType := list.u8()
				name := list.bytes(list.u16())
				if nameType == 0 && !list.bad && h.sni == "" {
					h.sni = strings.ToLower(strings.TrimSuffix(string(name), "."))
				}
			}
		case 16: // application_layer_protocol_negotiation
			list := reader8{b: body.bytes(body.u16())}
			for len(list.b) > 0 && !list.bad {
				p := list.bytes(list.u8())
				if !list.bad {
					h.alpn = append(h.alpn, string(p))
				}
			}
		case 43: // supported_versions
			list := reader8{b: body.bytes(body.u8())}
			best := uint16(0)
			for len(list.b) >= 2 {
				v := uint16(list.u16())
				if versionRank(v) > versionRank(best) {
					best = v
				}
			}
			if best != 0 {
				h.version = best
			}
		}
	}
	return h, nil
}

// versionRank orders TLS versions, with TLS 1.3 drafts between 1.2 and
// 1.3, and GREASE values last.
func versionRank(v uint16) int {
	switch {
	case v&0x0f0f == 0x0a0a:
		return -1 // GREASE
	case v == 0x0304:
		return 0x0304 << 8
	case v>>8 == 0x7f: // TLS 1.3 draft NN
		return 0x0303<<8 + int(v&0xff)
	case v>>8 == 3:
		return int(v) << 8
	}
	return -1
}

// tlsVersionName is how Flow.TLSVersion spells a version.
func tlsVersionName(v uint16) string {
	switch {
	case v == 0x0300:
		return "SSL 3.0"
	case v >= 0x0301 && v <= 0x0304:
		return fmt.Sprintf("1.%d", v-0x0301)
	case v>>8 == 0x7f:
		return fmt.Sprintf("1.3-draft%d", v&0xff)
	case v == 0:
		return ""
	}
	return fmt.Sprintf("0x%04x", v)
}

func applyHello(f *flow.Flow, h *clientHello) {
	f.SNI = h.sni
	f.ALPN = strings.Join(h.alpn, ",")
	f.TLSVersion = tlsVersionName(h.version)
	if f.Host == "" {
		f.Host = h.sni
	}
}

var errShort = errors.New("message too short")

// reader8 reads big-endian fields from a byte slice; reading past the end
// sets bad and returns zeros.
type reader8 struct {
	b   []byte
	bad bool
}

func (r *reader8) u8() int {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return int(v)
}

func (r *reader8) u16() int {
	if len(r.b) < 2 {
		r.bad = true
		r.b = nil
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return int(v)
}

func (r *reader8) bytes(n int) []byte {
	if n > len(r.b) {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader8) skip(n int) { r.bytes(n) }

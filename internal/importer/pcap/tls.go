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
	pkts    []int // packets that completed it, and a second hello after a HelloRetryRequest
	sni     string
	alpn    []string
	version uint16 // highest version offered (supported_versions, else legacy)
}

// tlsCollector gathers the first bytes of a client stream, record after
// record, until it holds a whole ClientHello handshake message.
type tlsCollector struct {
	buf []byte
	// after is set once the first hello is read: the collector then
	// looks at the next records for a second ClientHello (the answer to
	// a HelloRetryRequest).
	after bool
}

func (t *tlsCollector) reset() { t.buf, t.after = t.buf[:0], false }

var errNotHello = errors.New("not a TLS ClientHello")

// add appends stream bytes. done is set when no more bytes are needed:
// with the hello, or with nil when the stream is not a ClientHello.
func (t *tlsCollector) add(data []byte) (h *clientHello, done bool, err error) {
	room := maxHello - len(t.buf)
	if len(data) > room {
		data = data[:room]
	}
	t.buf = append(t.buf, data...)
	if t.after {
		return t.retry()
	}
	msg, used, complete, err := handshakeFromRecords(t.buf)
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
	t.buf = append(t.buf[:0], t.buf[used:]...)
	t.after = true
	return h, true, nil
}

// retry looks at the records after the first ClientHello: a
// ChangeCipherSpec may come first, then either a second ClientHello (after
// a HelloRetryRequest) or anything else, which ends the search.
func (t *tlsCollector) retry() (h *clientHello, done bool, err error) {
	for {
		if len(t.buf) < 6 {
			return nil, len(t.buf) >= maxHello, nil
		}
		n := int(binary.BigEndian.Uint16(t.buf[3:5]))
		switch {
		case t.buf[0] == 20: // ChangeCipherSpec
			if len(t.buf) < 5+n {
				return nil, false, nil
			}
			t.buf = t.buf[5+n:]
			continue
		case t.buf[0] == 22 && t.buf[5] == 1:
			msg, _, complete, err := handshakeFromRecords(t.buf)
			if err != nil || !complete {
				return nil, err != nil || len(t.buf) >= maxHello, err
			}
			h, err := parseClientHello(msg)
			return h, true, err
		}
		return nil, true, nil
	}
}

// handshakeFromRecords joins the handshake-record fragments at the start of
// b and reports whether they hold a whole first handshake message.
// used is how many bytes of b the records holding the message take.
func handshakeFromRecords(b []byte) (msg []byte, used int, complete bool, err error) {
	var hs []byte
	for len(b)-used >= 5 {
		r := b[used:]
		if r[0] != 22 || r[1] != 3 {
			return nil, 0, false, errNotHello
		}
		n := int(binary.BigEndian.Uint16(r[3:5]))
		if len(r) < 5+n {
			break
		}
		if hs == nil && n >= 4 {
			// The usual case: the whole message in the first record.
			if need := 4 + (int(r[6])<<16 | int(r[7])<<8 | int(r[8])); need <= n {
				return r[5 : 5+need], 5 + n, true, nil
			}
		}
		hs = append(hs, r[5:5+n]...)
		used += 5 + n
		if len(hs) >= 4 {
			need := 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
			if len(hs) >= need {
				return hs[:need], used, true, nil
			}
		}
	}
	return nil, 0, false, nil
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
	if len(h.pkts) > 1 {
		addNote(f, "second ClientHello after a HelloRetryRequest")
	}
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

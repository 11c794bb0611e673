package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ClientHello is what pilotwire reads from a TLS ClientHello as it passes
// through a tunnel. Nothing here is secret: the hello travels in the clear.
type ClientHello struct {
	SNI  string   // server_name (host_name type), lower case; empty if absent
	ALPN []string // application protocols offered, in the client's order
	// Version is the highest TLS version offered: the largest non-GREASE
	// entry of supported_versions, else the hello's legacy_version.
	Version uint16
}

// VersionName formats a TLS version number the way flows record it:
// "1.3", "1.2", …; unknown numbers as hex.
func VersionName(v uint16) string {
	switch v {
	case 0:
		return ""
	case 0x0300:
		return "SSL3.0"
	case 0x0301:
		return "1.0"
	case 0x0302:
		return "1.1"
	case 0x0303:
		return "1.2"
	case 0x0304:
		return "1.3"
	}
	if v>>8 == 0x7f {
		return fmt.Sprintf("1.3-draft%d", v&0xff)
	}
	return fmt.Sprintf("0x%04x", v)
}

// ALPNList is the offered protocols, comma separated, as Flow.ALPN holds them.
func (h ClientHello) ALPNList() string { return strings.Join(h.ALPN, ",") }

// Errors of ParseClientHello.
var (
	// ErrNeedMore means the bytes so far are a valid beginning of a
	// ClientHello; read more and call again.
	ErrNeedMore = errors.New("tls: client hello incomplete")
	// ErrNotTLS means the stream does not start with a TLS handshake record.
	ErrNotTLS = errors.New("tls: not a tls client hello")
)

// MaxClientHello bounds the handshake message ParseClientHello accepts
// (hellos with post-quantum key shares are about 2 KB; ECH adds little).
const MaxClientHello = 32 << 10

const (
	recordHeaderLen   = 5
	recordTypeHandsh  = 22
	handshakeHello    = 1
	extServerName     = 0
	extALPN           = 16
	extSupportedVerss = 43
)

// ParseClientHello parses the ClientHello at the start of stream, the bytes a
// client sent first in a tunnel. The hello may be split over several TLS
// records and over several reads: with a valid but short prefix it returns
// ErrNeedMore. It never panics on bad input, and returns an error saying
// where the hello is malformed.
func ParseClientHello(stream []byte) (ClientHello, error) {
	msg, err := handshakeMessage(stream)
	if err != nil {
		return ClientHello{}, err
	}
	return parseHelloBody(msg)
}

// handshakeMessage reassembles the first handshake message from the TLS
// records at the start of stream.
func handshakeMessage(stream []byte) ([]byte, error) {
	var msg []byte
	need := -1 // length of the whole message (4-byte header included), once known
	off := 0
	for {
		if need >= 0 && len(msg) >= need {
			return msg[4:need], nil
		}
		if len(stream)-off < recordHeaderLen {
			if off == 0 && len(stream) > 0 && stream[0] != recordTypeHandsh {
				return nil, ErrNotTLS
			}
			return nil, ErrNeedMore
		}
		h := stream[off : off+recordHeaderLen]
		if h[0] != recordTypeHandsh {
			if off == 0 {
				return nil, ErrNotTLS
			}
			return nil, fmt.Errorf("tls: record at offset %d has type %d inside the client hello", off, h[0])
		}
		if h[1] != 3 {
			if off == 0 {
				return nil, ErrNotTLS
			}
			return nil, fmt.Errorf("tls: record at offset %d has version %d.%d", off, h[1], h[2])
		}
		n := int(h[3])<<8 | int(h[4])
		if n == 0 || n > 1<<14+2048 {
			return nil, fmt.Errorf("tls: record at offset %d has length %d", off, n)
		}
		body := stream[off+recordHeaderLen:]
		complete := len(body) >= n
		if complete {
			body = body[:n]
		}
		if msg == nil {
			msg = body // the common case, one record: no copy
		} else {
			// The full slice expression makes append copy, never write
			// into stream.
			msg = append(msg[:len(msg):len(msg)], body...)
		}
		if need < 0 && len(msg) >= 4 {
			if msg[0] != handshakeHello {
				return nil, fmt.Errorf("tls: first handshake message has type %d, not client hello", msg[0])
			}
			need = 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if need-4 > MaxClientHello {
				return nil, fmt.Errorf("tls: client hello of %d bytes is over the %d byte limit", need-4, MaxClientHello)
			}
		}
		if !complete {
			if need >= 0 && len(msg) >= need {
				continue
			}
			return nil, ErrNeedMore
		}
		off += recordHeaderLen + n
	}
}

// reader is a bounds-checked cursor over a hello.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("tls: client hello truncated in %s at offset %d", what, r.off)
	}
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail(what)
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8(what string) int {
	b := r.bytes(1, what)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (r *reader) u16(what string) int {
	b := r.bytes(2, what)
	if b == nil {
		return 0
	}
	return int(b[0])<<8 | int(b[1])
}

// vec8 and vec16 read a length-prefixed vector.
func (r *reader) vec8(what string) []byte  { return r.bytes(r.u8(what), what) }
func (r *reader) vec16(what string) []byte { return r.bytes(r.u16(what), what) }

func isGREASE(v int) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

func parseHelloBody(msg []byte) (ClientHello, error) {
	var h ClientHello
	r := &reader{b: msg}
	legacy := r.u16("legacy_version")
	r.bytes(32, "random")
	r.vec8("session_id")
	r.vec16("cipher_suites")
	r.vec8("compression_methods")
	if r.err != nil {
		return h, r.err
	}
	h.Version = uint16(legacy)
	if r.off == len(msg) {
		return h, nil // no extensions (SSL 3.0 style)
	}
	exts := &reader{b: r.vec16("extensions")}
	if r.err != nil {
		return h, r.err
	}
	best := 0
	for exts.off < len(exts.b) && exts.err == nil {
		typ := exts.u16("extension type")
		data := exts.vec16("extension data")
		if exts.err != nil {
			break
		}
		e := &reader{b: data}
		switch typ {
		case extServerName:
			list := &reader{b: e.vec16("server_name list")}
			for list.off < len(list.b) && list.err == nil {
				nameType := list.u8("server_name type")
				name := list.vec16("server_name")
				if list.err == nil && nameType == 0 && h.SNI == "" {
					h.SNI = sanitizeALPN(bytes.ToLower(name))
				}
			}
			if list.err != nil {
				return h, list.err
			}
		case extALPN:
			list := &reader{b: e.vec16("alpn list")}
			for list.off < len(list.b) && list.err == nil {
				p := list.vec8("alpn protocol")
				if list.err == nil {
					h.ALPN = append(h.ALPN, sanitizeALPN(p))
				}
			}
			if list.err != nil {
				return h, list.err
			}
		case extSupportedVerss:
			list := &reader{b: e.vec8("supported_versions")}
			for list.off+1 < len(list.b) {
				v := list.u16("supported_versions")
				if !isGREASE(v) && v > best {
					best = v
				}
			}
		}
		if e.err != nil {
			return h, e.err
		}
	}
	if exts.err != nil {
		return h, exts.err
	}
	if best > 0 {
		h.Version = uint16(best)
	}
	return h, nil
}

// sanitizeALPN keeps a protocol or server name printable: names come from
// the network and end up in reports and web pages.
func sanitizeALPN(p []byte) string {
	for _, c := range p {
		if c < 0x21 || c > 0x7e || c == ',' {
			return strconv.QuoteToASCII(string(p))
		}
	}
	return string(p)
}

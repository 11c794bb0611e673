package pcap

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// HTTP parser states.
const (
	hIdle      = iota // at the start of a message
	hHeader           // collecting the header block
	hBody             // skipping a body of known length
	hChunkSize        // reading a chunk-size line of a chunked body
	hChunkData        // skipping a chunk's data
	hTrailer          // reading the trailer lines after the last chunk
	hResync           // lost the message boundary: wait for a segment that starts a message
)

// maxChunkLine bounds a chunk-size or trailer line.
const maxChunkLine = 4 << 10

// maxHeader bounds the header block collected for one message.
const maxHeader = 16 << 10

// maxQueued bounds the requests a connection holds waiting for their
// responses (pipelining, or responses missing from the capture).
const maxQueued = 32

// httpParser follows one direction of an HTTP/1.x connection from message
// to message. It keeps only the header block being read.
type httpParser struct {
	state int
	buf   []byte
	line  []byte // the chunk-size or trailer line being read
	left  int64  // body (or chunk) bytes still to skip
	start int64  // stream offset where the current message began
	ts    time.Time
}

// skipBody consumes body bytes from data in the states hBody to hTrailer
// and returns how many it used; the state is hIdle once the body has
// ended. ok is false when a chunked body is malformed.
func (p *httpParser) skipBody(data []byte) (used int, ok bool) {
	for used < len(data) && p.state != hIdle {
		rest := data[used:]
		switch p.state {
		case hBody, hChunkData:
			n := min(int64(len(rest)), p.left)
			p.left -= n
			used += int(n)
			if p.left == 0 {
				if p.state == hBody {
					p.state = hIdle
				} else {
					p.state = hChunkSize // the CRLF after the data reads as an empty line
				}
			}
		case hChunkSize, hTrailer:
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				if len(p.line)+len(rest) > maxChunkLine {
					return used, false
				}
				p.line = append(p.line, rest...)
				return len(data), true
			}
			p.line = append(p.line, rest[:i]...)
			used += i + 1
			line := bytes.TrimSpace(p.line)
			p.line = p.line[:0]
			if p.state == hTrailer {
				if len(line) == 0 {
					p.state = hIdle
				}
				continue
			}
			if len(line) == 0 {
				continue // the CRLF that ends a chunk's data
			}
			if j := bytes.IndexByte(line, ';'); j >= 0 {
				line = bytes.TrimSpace(line[:j])
			}
			size, err := strconv.ParseInt(string(line), 16, 64)
			if err != nil || size < 0 {
				return used, false
			}
			if size == 0 {
				p.state = hTrailer
			} else {
				p.state, p.left = hChunkData, size
			}
		}
	}
	return used, true
}

var methods = []string{"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "CONNECT ", "PATCH ", "TRACE ",
	"M-SEARCH ", "NOTIFY ", "SUBSCRIBE ", "UNSUBSCRIBE ", "PROPFIND ", "PROPPATCH ", "MKCOL ", "COPY ", "MOVE ",
	"LOCK ", "UNLOCK ", "REPORT ", "SEARCH "}

// startsWithMethod reports whether b begins with a known HTTP method and a
// space, or with a prefix of one when b is shorter. (HTTP/2's "PRI *"
// preface is not one: such a connection is left opaque.)
func startsWithMethod(b []byte) bool {
	if len(b) == 0 || b[0] < 'A' || b[0] > 'Z' {
		return false
	}
	for _, m := range methods {
		n := min(len(m), len(b))
		if string(b[:n]) == m[:n] {
			return true
		}
	}
	return false
}

// looksLikeClientStart reports whether b is how a client opens a
// conversation: a TLS handshake record or an HTTP request.
func looksLikeClientStart(b []byte) bool {
	if len(b) >= 6 && b[0] == 0x16 && b[1] == 3 && b[5] == 1 {
		return true
	}
	return len(b) >= 8 && startsWithMethod(b)
}

// headerEnd returns the length of the header block in b (through the
// blank line), or -1. from is where new bytes begin.
func headerEnd(b []byte, from int) int {
	from = max(0, from-3)
	for {
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			return -1
		}
		i += from
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
		from = i + 1
	}
}

// collect adds data to the header block. It returns the header block and
// how much of data it used, or n<0 when the block is not complete yet and
// all of data was used; ok is false when the block grew too long.
func (p *httpParser) collect(data []byte) (hdr []byte, used int, ok bool) {
	prev := len(p.buf)
	room := maxHeader - prev
	take := data
	if len(take) > room {
		take = take[:room]
	}
	p.buf = append(p.buf, take...)
	e := headerEnd(p.buf, prev)
	if e < 0 {
		if len(p.buf) >= maxHeader {
			return nil, len(take), false
		}
		return nil, -1, true
	}
	return p.buf[:e], e - prev, true
}

// message is the parsed start line and the headers pilotwire uses.
type message struct {
	a, b, c       string // request: method, target, version; response: version, status, reason
	host          string
	contentLength int64 // -1 when absent
	chunked       bool
}

func parseMessage(hdr []byte) (message, bool) {
	m := message{contentLength: -1}
	line, rest, _ := bytes.Cut(hdr, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	parts := strings.SplitN(string(line), " ", 3)
	if len(parts) < 2 {
		return m, false
	}
	m.a, m.b = parts[0], parts[1]
	if len(parts) == 3 {
		m.c = parts[2]
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "host"):
			m.host = string(value)
		case asciiEqualFold(name, "content-length"):
			if n, err := strconv.ParseInt(string(value), 10, 64); err == nil && n >= 0 {
				m.contentLength = n
			}
		case asciiEqualFold(name, "transfer-encoding"):
			if bytes.Contains(bytes.ToLower(value), []byte("chunked")) {
				m.chunked = true
			}
		}
	}
	return m, true
}

func asciiEqualFold(b []byte, s string) bool {
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}

// requestData parses client bytes as HTTP requests. It returns the bytes
// left over when a CONNECT request's headers end (the tunnel begins), with
// c.cmode set to modeSniff.
func (rd *reader) requestData(c *conn, data []byte, off int64, ts time.Time) []byte {
	p := &c.creq
	if p.state == hResync {
		if !startsWithMethod(data) {
			return nil
		}
		p.state = hIdle
	}
	for len(data) > 0 {
		switch p.state {
		case hIdle:
			if !startsWithMethod(data) {
				p.state = hResync
				return nil
			}
			p.state = hHeader
			p.buf = p.buf[:0]
			p.start, p.ts = off, ts
		case hHeader:
			hdr, used, ok := p.collect(data)
			if !ok {
				c.cmode = modeOpaque
				return nil
			}
			if used < 0 {
				return nil
			}
			data, off = data[used:], off+int64(used)
			m, ok := parseMessage(hdr)
			if !ok || !strings.HasPrefix(m.c, "HTTP/") {
				p.state = hResync
				return nil
			}
			rd.addRequest(c, m, p.start, p.ts)
			switch {
			case m.a == "CONNECT":
				p.state = hIdle
				c.cmode = modeSniff
				return data
			case m.chunked:
				p.state = hChunkSize
				p.line = p.line[:0]
			case m.contentLength > 0:
				p.state, p.left = hBody, m.contentLength
			default:
				p.state = hIdle
			}
		default: // in a body
			used, ok := p.skipBody(data)
			if !ok {
				p.state = hResync
				return nil
			}
			data, off = data[used:], off+int64(used)
		}
	}
	return nil
}

func (rd *reader) addRequest(c *conn, m message, start int64, ts time.Time) {
	c.nreqs++
	r := &request{
		n: c.nreqs, pkt: rd.pkt, start: ts, end: ts,
		method: m.a, target: m.b, host: m.host,
		upStart: start, downStart: -1,
	}
	if c.nreqs == 1 {
		// The first request carries the connection's setup and any
		// bytes before it.
		r.start, r.upStart, r.downStart = c.start, 0, -1
	}
	if n := len(c.reqs); n > 0 && c.reqs[n-1].end.Before(ts) {
		c.reqs[n-1].end = ts
	}
	c.reqs = append(c.reqs, r)
	if len(c.reqs) > maxQueued {
		rd.emitRequest(c, false)
	}
}

// serverData parses server bytes as HTTP responses.
func (rd *reader) serverData(c *conn, data []byte, off int64, ts time.Time) {
	p := &c.sresp
	if p.state == hResync {
		if !bytes.HasPrefix(data, []byte("HTTP/")) {
			return
		}
		p.state = hIdle
	}
	for len(data) > 0 && c.smodeHTTP {
		switch p.state {
		case hIdle:
			if !bytes.HasPrefix(data, []byte("HTTP/")[:min(5, len(data))]) {
				p.state = hResync
				return
			}
			p.state = hHeader
			p.buf = p.buf[:0]
			p.start, p.ts = off, ts
		case hHeader:
			hdr, used, ok := p.collect(data)
			if !ok {
				c.smodeHTTP = false
				return
			}
			if used < 0 {
				return
			}
			data, off = data[used:], off+int64(used)
			m, ok := parseMessage(hdr)
			status, err := strconv.Atoi(m.b)
			if !ok || err != nil || status < 100 || status > 999 {
				p.state = hResync
				return
			}
			r := rd.responseFor(c, status, p.start)
			p.state = hIdle
			switch {
			case status == 101:
				// Upgraded (WebSocket, …): no more HTTP either way.
				c.smodeHTTP = false
				c.cmode = modeOpaque
			case status < 200, status == 204, status == 304, r != nil && r.method == "HEAD":
			case r != nil && r.method == "CONNECT" && status < 300:
				c.smodeHTTP = false
			case m.chunked:
				p.state = hChunkSize
				p.line = p.line[:0]
			case m.contentLength >= 0:
				p.state, p.left = hBody, m.contentLength
				if p.left == 0 {
					p.state = hIdle
				}
			default:
				// The body runs to the end of the connection.
				c.smodeHTTP = false
			}
		default: // in a body
			used, ok := p.skipBody(data)
			if !ok {
				p.state = hResync
				return
			}
			data, off = data[used:], off+int64(used)
		}
	}
}

// responseFor records a response status for the oldest request still
// waiting for one, and emits the request before it, which is now complete.
func (rd *reader) responseFor(c *conn, status int, start int64) *request {
	if status < 200 && status != 101 {
		return nil
	}
	for i, r := range c.reqs {
		if r.downStart >= 0 {
			continue
		}
		r.status = status
		r.downStart = start
		if r.n == 1 {
			r.downStart = 0
		}
		for ; i > 0; i-- {
			rd.emitRequest(c, false)
		}
		return r
	}
	return nil
}

// emitRequest emits the oldest queued request of c. Its bytes run up to
// where the next request (and response) began, or to the end of the
// connection when last is set and it is the final one.
func (rd *reader) emitRequest(c *conn, last bool) {
	r := c.reqs[0]
	c.reqs = c.reqs[1:]
	f := rd.baseFlow(c)
	f.Start = r.start
	f.End = r.end
	f.Key = connKeyString(c)
	if r.n > 1 {
		f.Key += "#" + strconv.Itoa(r.n)
	}
	if len(c.reqs) > 0 {
		nx := c.reqs[0]
		f.BytesUp = nx.upStart - r.upStart
		if r.downStart >= 0 {
			if nx.downStart >= 0 {
				f.BytesDown = nx.downStart - r.downStart
			} else {
				f.BytesDown = c.down.hi - r.downStart
			}
		}
	} else {
		f.BytesUp = c.up.hi - r.upStart
		if r.downStart >= 0 {
			f.BytesDown = c.down.hi - r.downStart
		} else if r.n == 1 {
			f.BytesDown = c.down.hi
		}
		if last {
			f.End = c.last
		}
	}
	f.BytesUp, f.BytesDown = max(f.BytesUp, 0), max(f.BytesDown, 0)
	f.Method = r.method
	f.Status = r.status
	if r.method == "CONNECT" {
		f.Kind = flow.KindConnect
		host, port := splitHostPort(r.target, 443)
		f.Host, f.Port = host, port
		f.URL = r.target
		if r.hello != nil {
			applyHello(&f, r.hello)
			f.Host = host // the CONNECT target names the tunnel; SNI is kept apart
		}
		var pkts []int
		if r.hello != nil {
			pkts = r.hello.pkts
		}
		rd.out(f, pkts)
		return
	}
	f.Kind = flow.KindHTTP
	f.Scheme = "http"
	fillRequestTarget(&f, r.target, r.host, int(c.server.Port()))
	rd.nameHost(&f, c.server.Addr())
	rd.out(f, nil)
}

// fillRequestTarget sets Host, Port and URL from a request target and Host
// header. An absolute target (a proxy request) wins over the header.
func fillRequestTarget(f *flow.Flow, target, hostHeader string, dstPort int) {
	if i := strings.Index(target, "://"); i > 0 && !strings.Contains(target[:i], "/") {
		scheme := strings.ToLower(target[:i])
		rest := target[i+3:]
		authority := rest
		path := "/"
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			authority, path = rest[:j], rest[j:]
		}
		def := 80
		if scheme == "https" {
			def = 443
		}
		f.Scheme = scheme
		f.Host, f.Port = splitHostPort(authority, def)
		f.URL = scheme + "://" + authority + path
		return
	}
	if hostHeader != "" {
		f.Host, f.Port = splitHostPort(hostHeader, dstPort)
		if target == "*" {
			f.URL = "*"
		} else {
			f.URL = "http://" + hostHeader + target
		}
		return
	}
	f.URL = target
	f.Port = dstPort
}

// splitHostPort splits "host:port" (or "[v6]:port", or a bare host),
// lower-casing the host.
func splitHostPort(s string, def int) (string, int) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
			return strings.ToLower(h), n
		}
		return strings.ToLower(h), def
	}
	return strings.ToLower(strings.Trim(s, "[]")), def
}

// udpHTTP makes a flow of an HTTP request sent in one UDP datagram (SSDP's
// M-SEARCH and NOTIFY).
func (rd *reader) udpHTTP(ts time.Time, p *packet) {
	e := headerEnd(p.payload, 0)
	hdr := p.payload
	if e > 0 {
		hdr = p.payload[:e]
	}
	m, ok := parseMessage(hdr)
	if !ok || !strings.HasPrefix(m.c, "HTTP/") {
		return
	}
	f := flow.Flow{
		Key:        fmt.Sprintf("udp:%s-%s:%d", p.src, p.dst, rd.pkt),
		Start:      ts,
		End:        ts,
		Client:     p.src.Addr().Unmap().String(),
		ClientPort: int(p.src.Port()),
		Kind:       flow.KindHTTP,
		Scheme:     "http",
		Method:     m.a,
		BytesUp:    int64(p.wireLen),
		Note:       "HTTP over UDP",
	}
	fillRequestTarget(&f, m.b, m.host, int(p.dst.Port()))
	rd.nameHost(&f, p.dst.Addr())
	rd.out(f, nil)
}

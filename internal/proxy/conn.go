package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// conn states, for Shutdown.
const (
	stateIdle   = iota // waiting for a request; may be closed at shutdown
	stateActive        // reading or answering a request
	stateTunnel        // relaying a CONNECT tunnel
)

// conn is one client connection.
type conn struct {
	p         *Proxy
	id        string
	nc        net.Conn
	cc        countConn // nc, counting bytes
	lr        io.LimitedReader
	br        *bufio.Reader
	bw        *bufio.Writer
	client    netip.AddrPort
	clientStr string // client's address as text, for flows
	local     netip.AddrPort
	user      string // Basic-auth user name once authenticated
	reqs      int
	linger    bool    // an error answer was sent: close gently
	opened    *tunnel // a tunnel serveOne opened, for serve to run
	x         exchange
	// The direct path's last pool key, and what it was made of.
	upHost, upKeyStr string
	upPort           int
	// dst is, for a connection the gateway redirected to the proxy, the
	// address the client meant to reach, and dstName what DNS named it
	// (transparent.go); zero for a proxy client.
	dst     netip.AddrPort
	dstName string

	mu     sync.Mutex
	state  int
	tun    *tunnel
	closed bool
}

// countConn counts the bytes read from and written to a connection.
type countConn struct {
	net.Conn
	rn, wn int64
	// While recording, head collects what Read returns: serveOne keeps the
	// bytes of the request head it is reading (and what the same reads
	// brought after it), to look at fields net/http drops.
	head      []byte
	recording bool
	// headErr is the error that ended the reads for a request head, if
	// one did: net/http parses the partial line a timeout or a close
	// left it with and reports that ("malformed MIME header: missing
	// colon"), while the cause was the timeout or the close.
	headErr error
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.rn += int64(n)
	if c.recording {
		c.head = append(c.head, b[:n]...)
		if err != nil {
			c.headErr = err
		}
	}
	return n, err
}

// maxKeptHead is the largest head buffer a connection keeps between
// requests; a larger one (a request with huge headers) is let go.
const maxKeptHead = 8 << 10

// hasLengthAndEncoding reports whether the request head holds both a
// Content-Length and a Transfer-Encoding field. net/http reads such a
// request by its Transfer-Encoding and removes the Content-Length, so
// only the head itself tells.
func hasLengthAndEncoding(head []byte) bool {
	var cl, te bool
	for len(head) > 0 {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the head
		}
		cl = cl || hasFieldName(line, "content-length:")
		te = te || hasFieldName(line, "transfer-encoding:")
	}
	return cl && te
}

// checkFieldNames refuses a field name with whitespace before its colon,
// which net/http keeps as a name of its own ("Transfer-Encoding "): a
// server that trims it would read a body the proxy did not see, and take
// the next request for it (RFC 9112 section 5.1 requires a 400).
func checkFieldNames(h http.Header) error {
	for k := range h {
		if strings.ContainsAny(k, " \t") {
			return fmt.Errorf("whitespace between header field name %q and its colon", strings.TrimRight(k, " \t"))
		}
	}
	return nil
}

// hasFieldName reports whether line starts with name, in any case.
func hasFieldName(line []byte, name string) bool {
	return len(line) >= len(name) && strings.EqualFold(string(line[:len(name)]), name)
}

func (c *countConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.wn += int64(n)
	return n, err
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (p *Proxy) newConn(nc net.Conn) *conn {
	c := &conn{
		p:      p,
		id:     p.keyPrefix + strconv.FormatUint(p.connSeq.Add(1), 10),
		nc:     nc,
		client: addrPort(nc.RemoteAddr()),
		local:  addrPort(nc.LocalAddr()),
	}
	c.clientStr = c.client.Addr().String()
	c.x.c = c
	c.cc.Conn = nc
	c.lr.R = &c.cc
	return c
}

// setState moves the connection to state s; it reports false when the
// connection was closed by Shutdown meanwhile.
func (c *conn) setState(s int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if s == stateActive && c.state == stateIdle && c.p.shutting.Load() {
		return false
	}
	c.state = s
	return true
}

func (c *conn) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateIdle && !c.closed {
		c.closed = true
		c.nc.Close()
	}
}

func (c *conn) forceClose(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.tun != nil {
		c.tun.end(reason, nil)
		c.tun.server.Close()
		if c.tun.stop != nil {
			c.tun.stop()
		}
	}
	c.x.abortLocked()
	c.nc.Close()
}

// close closes the client connection. After an error answer it first
// half-closes and drains what the client still sends, for a short while:
// closing a socket with unread data resets the connection, and the client
// could lose the answer that says why.
func (c *conn) close() {
	if tc, ok := c.nc.(*net.TCPConn); ok && c.linger {
		if tc.CloseWrite() == nil {
			_ = tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, _ = io.CopyN(io.Discard, tc, 256<<10)
		}
	}
	c.nc.Close()
}

// upCount is how many bytes of the client's stream were consumed so far
// (read from the socket, minus what waits in the buffer).
func (c *conn) upCount() int64 {
	n := c.cc.rn
	if c.br != nil {
		n -= int64(c.br.Buffered())
	}
	return n
}

func (c *conn) releaseBuffers() {
	c.cc.head = nil
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
	if c.bw != nil {
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
		c.bw = nil
	}
}

func (c *conn) serve() {
	c.takeBuffers()
	c.serveRequests()
}

func (c *conn) takeBuffers() {
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.lr)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(&c.cc)
}

// serveRequests serves requests until the connection ends or opens a
// tunnel, which it then runs.
func (c *conn) serveRequests() {
	for c.serveOne() {
	}
	if t := c.opened; t != nil {
		c.opened = nil
		go t.run() // it closes the connection when the tunnel ends
		return
	}
	c.releaseBuffers()
	c.close()
	c.p.forget(c)
}

// serveOne reads and answers one request; it reports whether the
// connection may carry another.
func (c *conn) serveOne() bool {
	p := c.p
	now := time.Now()
	if c.reqs > 0 {
		// Between requests: wait for the next one's first byte for as
		// long as an idle connection may stay (Shutdown closes it now).
		if !c.setState(stateIdle) {
			return false
		}
		_ = c.nc.SetReadDeadline(now.Add(p.idleTimeout()))
		c.lr.N = math.MaxInt64
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
		now = time.Now()
	}
	if !c.setState(stateActive) {
		return false
	}
	c.reqs++
	start := now
	x := c.begin(start)
	defer x.end()
	// The header deadline matters only if reading the head reads the
	// socket: a keep-alive client's next request usually arrives whole,
	// and setting a deadline costs two timer updates per request.
	deadline := c.reqs == 1 || !c.headBuffered()
	if deadline {
		_ = c.nc.SetReadDeadline(start.Add(p.headerTimeout()))
	}
	c.lr.N = int64(p.maxHeaderBytes()) + int64(c.br.Buffered())
	// Keep the head's bytes: those already buffered, and what the reads
	// for the rest bring.
	pre, _ := c.br.Peek(c.br.Buffered())
	c.cc.head = append(c.cc.head[:0], pre...)
	c.cc.headErr = nil
	c.cc.recording = true
	req, err := http.ReadRequest(c.br)
	c.cc.recording = false
	if err == nil {
		err = checkFieldNames(req.Header)
	}
	p.requests.Add(1)
	if err != nil {
		if up, _ := x.bytes(); errors.Is(err, io.EOF) && up == 0 {
			// The client closed a keep-alive connection, or connected and
			// closed without a byte (a port probe): nothing to record.
			return false
		}
		x.refuseHead(err)
		return false
	}
	c.lr.N = math.MaxInt64
	if len(req.TransferEncoding) > 0 || !req.Close && !req.ProtoAtLeast(1, 1) {
		// A request with both Content-Length and Transfer-Encoding may be
		// an attempt at request smuggling: whoever sent it may disagree
		// on where it ends, so the connection closes after the answer
		// (RFC 9112 section 6.1).
		up, _ := x.bytes()
		head := c.cc.head[:min(len(c.cc.head), int(up))]
		if hasLengthAndEncoding(head) {
			req.Close = true
		}
	}
	if cap(c.cc.head) > maxKeptHead {
		c.cc.head = nil
	}
	if req.Body != http.NoBody {
		// The body is read without a time limit, as long as it flows.
		// Bodiless requests read nothing more: the next read is the
		// next request's, after a new deadline, or a tunnel's, which
		// sets its own.
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	// x.end, deferred, lets go of req: a tunnel must not keep it alive.
	x.req = req
	keep := x.dispatch()
	if req.Body != nil {
		req.Body.Close()
	}
	return keep
}

// headBuffered reports whether a whole request head is already in the
// read buffer, so that reading it will not touch the socket.
func (c *conn) headBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n"))
}

// dispatch checks a request against the rules and serves it; it reports
// whether the connection may carry another request.
func (x *exchange) dispatch() bool {
	c, p, req, f := x.c, x.c.p, x.req, &x.f

	f.Method = req.Method
	f.URL = req.RequestURI
	if req.Method == http.MethodConnect {
		f.Kind = flow.KindConnect
		f.Scheme = ""
		f.URL = ""
		host, port, err := splitTarget(req.RequestURI, 0)
		if err != nil {
			return x.refuse(http.StatusBadRequest, "bad CONNECT target: "+err.Error(), nil)
		}
		f.Host, f.Port = host, port
	} else if req.URL.IsAbs() || req.URL.Host != "" {
		f.Kind = flow.KindHTTP
		f.Scheme = strings.ToLower(req.URL.Scheme)
		f.URL = req.URL.String()
		def := 80
		if f.Scheme == "https" {
			def = 443
		}
		host, port, err := splitTarget(req.URL.Host, def)
		if err != nil {
			return x.refuse(http.StatusBadRequest, "bad target: "+err.Error(), nil)
		}
		f.Host, f.Port = host, port
	} else if c.dst.IsValid() {
		// Origin form on a connection the gateway redirected: a request
		// for the server the client connected to.
		if reason := x.transparentTarget(); reason != "" {
			return x.refuse(http.StatusBadRequest, reason, nil)
		}
	} else {
		// Origin form: a request for the proxy itself (PAC, WPAD, the
		// help page), answered by serveLocal.
		f.Kind = flow.KindPAC
		f.Scheme = "http"
		f.URL = req.URL.Path
		f.Host = strings.ToLower(req.Host)
		if h, port, err := net.SplitHostPort(req.Host); err == nil {
			f.Host = strings.ToLower(h)
			f.Port, _ = strconv.Atoi(port)
		}
	}

	if !p.clientAllowed(c.client.Addr()) {
		return x.refuse(http.StatusForbidden,
			fmt.Sprintf("client %s is not in the allowed networks", c.client.Addr()), nil)
	}
	if p.looped(req.Header) {
		return x.refuse(http.StatusLoopDetected, "forwarding loop", nil)
	}
	// The proxy's own answers need no proxy credentials: a device fetches
	// its PAC file directly, without them, and they hold nothing secret.
	if p.AuthUser != "" && c.user == "" && f.Kind != flow.KindPAC {
		user, ok := checkBasic(req.Header.Get("Proxy-Authorization"), p.AuthUser, p.AuthPass)
		if !ok {
			reason := "proxy authentication required"
			if req.Header.Get("Proxy-Authorization") != "" {
				reason = fmt.Sprintf("wrong proxy credentials (user %q)", user)
			}
			h := http.Header{"Proxy-Authenticate": {`Basic realm="pilotwire"`}}
			return x.refuse(http.StatusProxyAuthRequired, reason, h)
		}
		c.user = user
		if f.Device == "" {
			f.Device = user
		}
	}

	if rule, denied := p.policyDenies(f); denied {
		return x.refuse(http.StatusForbidden, rule, nil)
	}
	switch {
	case req.Method == http.MethodConnect:
		if !p.connectAllowed(f.Port) {
			return x.refuse(http.StatusForbidden,
				fmt.Sprintf("CONNECT to port %d is not allowed", f.Port), nil)
		}
		c.opened = x.openTunnel()
		return false
	case f.Kind == flow.KindHTTP && f.Scheme == "http" && (req.URL.IsAbs() || req.URL.Host != ""):
		return x.forward()
	case f.Scheme == "https" && req.URL.IsAbs():
		// A client that sends "GET https://host/" instead of a CONNECT:
		// forwarded over TLS, the server's certificate verified, as
		// Squid does.
		return x.forward()
	case req.URL.IsAbs():
		return x.refuse(http.StatusBadRequest,
			fmt.Sprintf("scheme %q is not proxied (only http and https)", req.URL.Scheme), nil)
	default:
		return x.serveLocal()
	}
}

// splitTarget splits "host:port" (port optional when def > 0) into a lower
// case host without brackets and a port number.
func splitTarget(hostport string, def int) (string, int, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		if def == 0 || strings.Count(hostport, ":") > 0 && !strings.HasPrefix(hostport, "[") {
			return "", 0, fmt.Errorf("%q: %w", hostport, err)
		}
		host, portStr = strings.Trim(hostport, "[]"), strconv.Itoa(def)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", hostport)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: no host", hostport)
	}
	for _, r := range host {
		if r <= ' ' || r == '/' || r == '@' || r == '%' && !strings.Contains(host, ":") || r > 0x7e {
			return "", 0, fmt.Errorf("%q: bad host", hostport)
		}
	}
	return strings.ToLower(strings.TrimSuffix(host, ".")), port, nil
}

// refuseHead answers a request whose head could not be read, if the client
// is still there, and records the refusal.
func (x *exchange) refuseHead(err error) {
	c, f := x.c, &x.f
	if c.cc.headErr != nil {
		err = c.cc.headErr // the cause, not what net/http made of the rest
	}
	status, reason := http.StatusBadRequest, "bad request: "+err.Error()
	var ne net.Error
	switch {
	case c.lr.N <= 0:
		status = http.StatusRequestHeaderFieldsTooLarge
		reason = fmt.Sprintf("request header over %d bytes", c.p.maxHeaderBytes())
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		status = http.StatusRequestTimeout
		reason = fmt.Sprintf("request header not complete within %s", c.p.headerTimeout())
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		status = 0
		reason = "client closed before the request header was complete"
	case errors.Is(err, net.ErrClosed):
		status = 0
		reason = "proxy shutdown"
	}
	f.Kind = flow.KindTCP
	if status != 0 {
		c.writeError(status, reason, nil, true)
	}
	x.finishRefusal(status, reason)
}

// finishRefusal records the exchange as refused with status (0: none
// was sent) for reason.
func (x *exchange) finishRefusal(status int, reason string) {
	x.f.Status = status
	x.f.Decision = flow.DecisionDenied
	x.f.Reason = reason
	x.finish()
}

// refuse answers req with an error status and records the refusal. It
// reports whether the connection may carry another request.
func (x *exchange) refuse(status int, reason string, h http.Header) bool {
	req := x.req
	// A request body we do not read would be taken for the next request.
	// A refused CONNECT ends the connection, except for a 407: the client
	// retries with credentials on the same connection.
	keep := !req.Close && req.ContentLength == 0 &&
		(req.Method != http.MethodConnect || status == http.StatusProxyAuthRequired)
	x.c.writeError(status, reason, h, !keep)
	x.finishRefusal(status, reason)
	return keep
}

// writeError writes a short text response.
func (c *conn) writeError(status int, msg string, h http.Header, closing bool) {
	body := fmt.Sprintf("pilotwire: %d %s: %s\n", status, http.StatusText(status), msg)
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.nc.SetWriteDeadline(time.Time{})
	bw := c.bw
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(bw, "%s: %s\r\n", k, v)
		}
	}
	if closing {
		c.linger = true
		bw.WriteString("Connection: close\r\n")
	}
	fmt.Fprintf(bw, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	_ = bw.Flush()
}

package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Transparent connections: what pilotwire gateway's redirect takes from a
// device that has no proxy setting. The client thinks it talks to the
// server itself, so there is no request to the proxy to read: the first
// bytes say what the connection is. A TLS ClientHello makes it a tunnel
// named by its SNI (a flow like a CONNECT's); an HTTP request in origin
// form makes it plain HTTP, served request by request as the proxy serves
// absolute-form requests; anything else is relayed as TCP. Each then runs
// the proxy's own path (limits, rules, policy, splice relay, progress
// records, interception), so its flows look like the proxy's, with
// Source gateway, and every server connection goes to the original
// destination, never to what the name resolves to.

// firstBytesWait is how long a redirected connection to port waits for
// the client's first bytes before it is relayed as TCP without them. TLS
// and HTTP clients speak at once, and on 443 and 80 their SNI or Host is
// worth a second's patience. Elsewhere the client may be waiting for the
// server to speak first (SMTP, SSH, FTP, a server that streams at once),
// and sends nothing until it has: there the wait, and the delay it adds
// to such a protocol, is a tenth of a second.
func firstBytesWait(port int) time.Duration {
	if port == 443 || port == 80 {
		return time.Second
	}
	return 100 * time.Millisecond
}

// ServeTransparent serves nc, a client connection redirected to the proxy
// on its way to dst. name, if not empty, is what DNS named dst for the
// client (the gateway's DNS answers); it names the flow when the client
// sends no SNI or Host. It returns at once; the connection is served on a
// goroutine of its own and Shutdown waits for it like any other.
func (p *Proxy) ServeTransparent(nc net.Conn, dst netip.AddrPort, name string) {
	p.init()
	if p.Record != nil {
		p.progressOnce.Do(func() { go p.progressLoop() })
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if p.open.Load() >= p.maxConns() {
		// The client expects its server, not an HTTP answer: close.
		f := p.transparentFlow(nc, dst, name)
		f.Key = p.keyPrefix + "busy-" + strconv.FormatUint(p.connSeq.Add(1), 10)
		f.Decision = flow.DecisionDenied
		f.Reason = fmt.Sprintf("too many open connections (limit %d)", p.maxConns())
		nc.Close()
		f.End = time.Now()
		p.record(&f)
		return
	}
	c := p.newConn(nc)
	c.dst, c.dstName = dst, name
	if !p.track(c) {
		return
	}
	go c.serveTransparent()
}

// transparentFlow is the flow of a redirected connection before anything
// was read: from the client to dst, named by name or dst's address.
func (p *Proxy) transparentFlow(nc net.Conn, dst netip.AddrPort, name string) flow.Flow {
	client := addrPort(nc.RemoteAddr())
	f := flow.Flow{
		Start:      time.Now(),
		Client:     client.Addr().String(),
		ClientPort: int(client.Port()),
		Device:     p.Devices[client.Addr()],
		Source:     flow.SourceGateway,
		Kind:       flow.KindTCP,
		Host:       dst.Addr().String(),
		Port:       int(dst.Port()),
		Note:       "original destination " + dst.String(),
	}
	if name != "" {
		f.Host = name
		f.Note += "; host named from DNS answer"
	}
	return f
}

// serveTransparent reads the client's first bytes and serves the
// connection as what they say it is.
func (c *conn) serveTransparent() {
	c.takeBuffers()
	if !c.setState(stateActive) {
		c.releaseBuffers()
		c.close()
		c.p.forget(c)
		return
	}
	first := c.peekFirst()
	if first == firstHTTP {
		c.serveRequests()
		return
	}
	c.reqs = 1
	x := c.begin(time.Now())
	defer x.end()
	sni := ""
	if first == firstTLS {
		b, _ := c.br.Peek(c.br.Buffered())
		if h, err := ParseClientHello(b); err == nil {
			sni = h.SNI
		}
	}
	t := x.openTransparent(first, sni)
	if t == nil {
		c.releaseBuffers()
		c.close()
		c.p.forget(c)
		return
	}
	if t = c.startTunnel(t); t != nil {
		// On this goroutine, not a new one as a CONNECT's tunnel: a
		// hand-off costs a wake-up, which at setup is latency the
		// device sees, and the stack the peek and dial grew is shrunk
		// by the next garbage collection while the tunnel waits.
		t.run() // it closes the connection when the tunnel ends
		return
	}
	c.close()
	c.p.forget(c)
}

// What a redirected connection's first bytes are.
const (
	firstOther = iota // not TLS or HTTP, or nothing within firstBytesWait
	firstTLS          // a TLS record (a whole ClientHello, if it fits the buffer)
	firstHTTP         // an HTTP/1 request line in origin form
)

// peekFirst waits for the client's first bytes and buffers them, without
// consuming them: for TLS the whole ClientHello if the read buffer holds
// it (with more, the tunnel reads the rest as it relays), for HTTP the
// request line.
func (c *conn) peekFirst() int {
	c.lr.N = int64(c.br.Size()) // serveOne sets its own limit
	// The wait's deadline only when there is a wait: a timer this soon
	// wakes the runtime's poller thread, and the bytes are usually there
	// already when the connection is served. Each peek asks for at most
	// one byte more than is buffered, which a readable socket gives
	// without waiting.
	var deadline bool
	peek := func(n int) ([]byte, error) {
		if !deadline && c.br.Buffered() < n && !readableNow(c.nc) {
			_ = c.nc.SetReadDeadline(time.Now().Add(firstBytesWait(int(c.dst.Port()))))
			deadline = true
		}
		return c.br.Peek(n)
	}
	defer func() {
		if deadline {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
	}()
	b, err := peek(1)
	if err != nil {
		return firstOther
	}
	if b[0] == 0x16 { // TLS handshake record
		for {
			b, _ = c.br.Peek(c.br.Buffered())
			if _, err := ParseClientHello(b); !errors.Is(err, ErrNeedMore) || len(b) == c.br.Size() {
				return firstTLS
			}
			if _, err := peek(len(b) + 1); err != nil {
				return firstTLS
			}
		}
	}
	for {
		b, _ = c.br.Peek(c.br.Buffered())
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if originFormLine(b[:i]) {
				return firstHTTP
			}
			return firstOther
		}
		if !methodPrefix(b) || len(b) == c.br.Size() {
			return firstOther
		}
		if _, err := peek(len(b) + 1); err != nil {
			return firstOther
		}
	}
}

// methodPrefix reports whether b can be the start of an HTTP request
// line: upper-case letters, then a space.
func methodPrefix(b []byte) bool {
	for i, ch := range b {
		switch {
		case ch >= 'A' && ch <= 'Z':
		case ch == ' ' && i > 0:
			return true
		default:
			return false
		}
	}
	return true
}

// originFormLine reports whether line is an HTTP/1 request line in origin
// form ("GET /path HTTP/1.1"). CONNECT and absolute-form requests are for
// a proxy beyond the gateway: their connections are relayed untouched.
func originFormLine(line []byte) bool {
	method, rest, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\r")), []byte(" "))
	return ok && len(method) > 0 && methodPrefix(method) && bytes.HasPrefix(rest, []byte("/")) &&
		bytes.Contains(rest, []byte(" HTTP/1."))
}

// openTransparent checks and dials a redirected connection that is not
// plain HTTP, and returns its tunnel, or nil when it did not open (its flow
// is then recorded).
func (x *exchange) openTransparent(first int, sni string) *tunnel {
	c, p, f := x.c, x.c.p, &x.f
	tf := p.transparentFlow(c.nc, c.dst, c.dstName)
	f.Source, f.Kind, f.Host, f.Port, f.Note = tf.Source, tf.Kind, tf.Host, tf.Port, tf.Note
	if first == firstTLS {
		f.Kind = flow.KindConnect
		f.Method = http.MethodConnect
		if sni != "" {
			f.Host = strings.ToLower(sni)
			f.Note = "original destination " + c.dst.String()
		}
	}
	refuse := func(reason string) *tunnel {
		f.Decision = flow.DecisionDenied
		f.Reason = reason
		x.finish()
		return nil
	}
	if !p.clientAllowed(c.client.Addr()) {
		return refuse(fmt.Sprintf("client %s is not in the allowed networks", c.client.Addr()))
	}
	if rule, denied := p.policyDenies(f); denied {
		return refuse(rule)
	}
	dialHost := c.dst.Addr().String()
	if p.Upstream != nil && f.Host != dialHost {
		dialHost = f.Host // the upstream proxy resolves the name
	}
	server, early, err := p.dialTunnel(x.context(), dialHost, f.Port, nil)
	if err != nil {
		var r *refusal
		if errors.As(err, &r) {
			return refuse(r.reason)
		}
		f.Error = err.Error()
		x.finish()
		return nil
	}
	return &tunnel{c: c, server: server, f: f, early: early, plain: first != firstTLS}
}

// transparentTarget makes an origin-form request on a redirected
// connection a request for the server the client connected to: its URL
// is built from the Host header (or the DNS name, or the address), and
// the server connection goes to the original destination. It returns why
// the request cannot be served, or "".
func (x *exchange) transparentTarget() string {
	c, req, f := x.c, x.req, &x.f
	host := req.Host
	if host == "" {
		host = c.dstName
	}
	if host == "" {
		host = c.dst.Addr().String()
	}
	name, _, err := splitTarget(host, int(c.dst.Port()))
	if err != nil {
		return "bad Host header: " + err.Error()
	}
	f.Kind = flow.KindHTTP
	f.Scheme = "http"
	f.Host, f.Port = name, int(c.dst.Port())
	hostport := name
	if strings.Contains(name, ":") {
		hostport = "[" + name + "]"
	}
	if f.Port != 80 {
		hostport = net.JoinHostPort(name, strconv.Itoa(f.Port))
	}
	f.URL = "http://" + hostport + req.URL.RequestURI()
	// The Host header goes to the server as the client wrote it.
	req.URL.Scheme, req.URL.Host = "http", host
	f.Note = "original destination " + c.dst.String()
	return ""
}

// dstKey is the context key of a redirected connection's original
// destination: dialTarget dials it instead of resolving the name.
type dstKey struct{}

func withDst(ctx context.Context, dst netip.AddrPort) context.Context {
	if !dst.IsValid() {
		return ctx
	}
	return context.WithValue(ctx, dstKey{}, dst)
}

func ctxDst(ctx context.Context) (netip.AddrPort, bool) {
	dst, ok := ctx.Value(dstKey{}).(netip.AddrPort)
	return dst, ok
}

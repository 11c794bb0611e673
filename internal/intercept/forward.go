package intercept

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// forwarder is the http.Handler of one intercepted connection: it sends
// each request on to the server and records it.
type forwarder struct {
	i          *Interceptor
	c          *Conn
	tr         *http.Transport
	name       string   // the server name verified and minted for
	proto      string   // the client side's protocol
	tlsVersion string   // the client side's TLS version
	refused    string   // set: the server was refused, every request gets a 502
	upProtos   []string // offered to the server (upstreamProtos)
	seq        atomic.Int64

	mu      sync.Mutex
	first   *tls.Conn       // the server connection verified before the client's handshake, until the Transport takes it
	h1      *h1Server       // the HTTP/1.1 path's server connection (http1.go)
	h1ctx   context.Context // done when the HTTP/1.1 path must stop
	stopped bool            // the HTTP/1.1 path is shutting down: no new server connection
	gone    bool            // the HTTP/1.1 client left while its request was with the server
	watch   *clientWatch    // the HTTP/1.1 path's watch of its client (http1.go), made at its first request
}

// dialTLS gives the Transport its server connections: the one verified
// before the client's handshake, then new ones to the same target,
// verified the same way.
func (fw *forwarder) dialTLS(ctx context.Context, _, _ string) (net.Conn, error) {
	fw.mu.Lock()
	first := fw.first
	fw.first = nil
	fw.mu.Unlock()
	if first != nil {
		return first, nil
	}
	raw, err := fw.c.Redial(ctx)
	if err != nil {
		return nil, err
	}
	tc, err := handshake(ctx, tls.Client(raw, upstreamConfig(fw.name, fw.c.RootCAs, fw.upProtos)), fw.c.HandshakeTimeout)
	if err != nil {
		raw.Close()
		return nil, &refusedError{upstreamRefusal(fw.name, err), err}
	}
	return tc, nil
}

// refusedError is a server connection refused for its certificate (or a
// failed handshake), said in the flow's words.
type refusedError struct {
	msg string
	err error
}

func (e *refusedError) Error() string { return e.msg }
func (e *refusedError) Unwrap() error { return e.err }

func (fw *forwarder) close() {
	fw.mu.Lock()
	if fw.first != nil {
		fw.first.Close()
		fw.first = nil
	}
	fw.mu.Unlock()
	if fw.tr != nil {
		fw.tr.CloseIdleConnections()
	}
}

// hopHeaders are the headers of one hop, never passed on (RFC 9110
// section 7.6.1), and Proxy-Authorization, which is the proxy's.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for tok := range strings.SplitSeq(f, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				h.Del(tok)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// newFlow is the flow of a request inside the connection, to host (the
// request's Host, or empty) for requestURI.
func (fw *forwarder) newFlow(method, host, requestURI string) flow.Flow {
	c := fw.c
	f := flow.Flow{
		Key:        c.Tunnel.Key + "-r" + strconv.FormatInt(fw.seq.Add(1), 10),
		Start:      fw.i.o.Now(),
		Client:     c.Tunnel.Client,
		ClientPort: c.Tunnel.ClientPort,
		Device:     c.Tunnel.Device,
		Session:    c.Tunnel.Session,
		Source:     c.Tunnel.Source, // proxy or gateway, as the tunnel came (below: proxy if unsaid)
		Kind:       flow.KindHTTP,
		Method:     method,
		Scheme:     "https",
		Host:       fw.name,
		Port:       c.Port,
		SNI:        c.SNI,
		ALPN:       fw.proto,
		TLSVersion: fw.tlsVersion,
		Decision:   flow.DecisionAllowed,
		Tunnel:     c.Tunnel.Key,
	}
	if f.Source == "" {
		f.Source = flow.SourceProxy
	}
	authority := fw.authority(host)
	if h, _, err := net.SplitHostPort(authority); err == nil {
		f.Host = strings.ToLower(strings.Trim(h, "[]"))
	} else {
		f.Host = strings.ToLower(authority)
	}
	f.URL = "https://" + authority + RedactRequestURI(requestURI)
	return f
}

// authority is a request's Host, or when it has none the name and port
// the connection is for.
func (fw *forwarder) authority(host string) string {
	if host != "" {
		return host
	}
	if fw.c.Port != 443 {
		return net.JoinHostPort(fw.name, strconv.Itoa(fw.c.Port))
	}
	return fw.name
}

func (fw *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := fw.c
	f := fw.newFlow(r.Method, r.Host, r.URL.RequestURI())
	authority := fw.authority(r.Host)
	kept := fw.bodiesFor(&f)
	up := counter{keep: kept.req}
	defer func() {
		f.BytesUp = up.n.Load()
		kept.finish(&f)
		f.End = fw.i.o.Now()
		if c.Record != nil {
			c.Record(f)
		}
	}()
	if fw.refused != "" {
		refuse(w, &f, fw.refused)
		return
	}

	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "https", authority
	out.Close = false
	removeHop(out.Header)
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		up.r = r.Body
		out.Body = &up
	} else {
		out.Body, out.ContentLength = http.NoBody, 0
	}
	resp, err := fw.tr.RoundTrip(out)
	if err != nil {
		var re *refusedError
		switch {
		case r.Context().Err() != nil:
			f.Error = "client went away before the answer"
		case errors.As(err, &re):
			refuse(w, &f, re.msg)
		default:
			f.Status = http.StatusBadGateway
			f.Error = "forwarding to " + fw.name + ": " + err.Error()
			http.Error(w, "pilotwire: 502 Bad Gateway: "+f.Error, http.StatusBadGateway)
		}
		return
	}
	defer resp.Body.Close()
	removeHop(resp.Header)
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	f.Status = resp.StatusCode
	f.Headers = HeaderLines(r.Header, resp.Header)
	f.Note = contentTypes(resp.Header.Get("Content-Type"), out.Header.Get("Content-Type"), out.Body != http.NoBody)
	w.WriteHeader(resp.StatusCode)
	down, err := copyBody(w, kept.response(resp.Body), resp.ContentLength < 0)
	f.BytesDown = down
	if err != nil {
		f.Error = "relaying the answer: " + err.Error()
		return
	}
	for k, vs := range resp.Trailer {
		h[k] = vs
	}
}

// refuse answers a request whose server was refused, and says so in its
// flow.
func refuse(w http.ResponseWriter, f *flow.Flow, why string) {
	refusal(f, why)
	http.Error(w, "pilotwire: 502 Bad Gateway: "+why, http.StatusBadGateway)
}

// refusal says in a request's flow that its server was refused.
func refusal(f *flow.Flow, why string) {
	f.Status = http.StatusBadGateway
	f.Decision = flow.DecisionDenied
	f.Reason = why
}

// contentTypes is a request flow's Note: the media types of the answer
// and of the request body, without parameters.
func contentTypes(resp, req string, reqBody bool) string {
	var parts []string
	if t := mediaType(resp); t != "" {
		parts = append(parts, "response "+t)
	}
	if t := mediaType(req); t != "" && reqBody {
		parts = append(parts, "request "+t)
	}
	return strings.Join(parts, "; ")
}

func mediaType(v string) string {
	if v == "" {
		return ""
	}
	slot := &mediaTypes[(len(v)+int(v[0])+int(v[len(v)-1]))%len(mediaTypes)]
	if e := slot.Load(); e != nil && e.value == v {
		return e.media
	}
	t, _, err := mime.ParseMediaType(v)
	if err != nil {
		t = "(malformed)"
	}
	slot.Store(&mediaEntry{value: v, media: t})
	return t
}

// mediaTypes remembers Content-Type values parsed, each in a slot chosen by
// its length and ends: servers send the same few values again and again,
// and mime.ParseMediaType makes a map of parameters every time. A value
// that differs each time (a multipart boundary) only takes its slot.
var mediaTypes [16]atomic.Pointer[mediaEntry]

type mediaEntry struct{ value, media string }

// counter counts what is read through it, and hands it to keep when that
// is not nil.
type counter struct {
	r    io.ReadCloser
	n    atomic.Int64
	keep *bodyKeeper
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if c.keep != nil {
		c.keep.add(p[:n])
	}
	return n, err
}

// bodyKeeper keeps the first max bytes of a body (proxy --bodies). A
// request body is read by net/http's Transport on a goroutine of its own,
// which may still be at it when the request's flow is finished: hence
// the lock.
type bodyKeeper struct {
	mu   sync.Mutex
	max  int
	kept []byte
}

func (k *bodyKeeper) add(p []byte) {
	k.mu.Lock()
	if room := k.max - len(k.kept); room > 0 && len(p) > 0 {
		k.kept = append(k.kept, p[:min(room, len(p))]...)
	}
	k.mu.Unlock()
}

func (k *bodyKeeper) bytes() []byte {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.kept
}

// keptReader hands what is read through it to keep.
type keptReader struct {
	r    io.Reader
	keep *bodyKeeper
}

func (k keptReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	k.keep.add(p[:n])
	return n, err
}

// bodies are the keepers of one request's bodies, when the interceptor
// keeps bodies and f's host is not marked no-bodies; noted says why they
// are not kept when it is.
type bodies struct {
	req, resp *bodyKeeper
	noted     string
}

func (fw *forwarder) bodiesFor(f *flow.Flow) bodies {
	o := &fw.i.o
	if o.Bodies <= 0 {
		return bodies{}
	}
	if o.NoBodies != nil {
		if why, ok := o.NoBodies(f.Host); ok {
			return bodies{noted: "bodies not kept: " + why}
		}
	}
	limit := min(o.Bodies, flow.MaxBody)
	return bodies{req: &bodyKeeper{max: limit}, resp: &bodyKeeper{max: limit}}
}

// response is body, kept as it is read when b keeps bodies.
func (b *bodies) response(body io.Reader) io.Reader {
	if b.resp == nil {
		return body
	}
	return keptReader{r: body, keep: b.resp}
}

// finish puts what b kept, or why it kept nothing, into f.
func (b *bodies) finish(f *flow.Flow) {
	switch {
	case b.noted != "":
		if f.Note != "" {
			f.Note += "; "
		}
		f.Note += b.noted
	case b.req != nil:
		f.Bodies = flow.EncodeBodies(flow.Bodies{Request: b.req.bytes(), Response: b.resp.bytes()})
	}
}

func (c *counter) Close() error { return c.r.Close() }

// copyBufs are copyBody's buffers: a fresh 32 KiB buffer a request was
// four fifths of the bytes allocated on the small-request path, and the
// garbage collector's work with them.
var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// copyBody copies an answer's body to the client; a body of unknown
// length is flushed as it comes (a stream must not wait in a buffer).
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) (int64, error) {
	var flushFn func() error
	if flush {
		flushFn = http.NewResponseController(w).Flush
	}
	return pumpBody(body, w.Write, flushFn)
}

// pumpBody copies body through write in pieces of a pooled buffer,
// calling flush (when not nil) after each: the one loop of both ways of
// serving (net/http's server here, the connection's own loop in
// http1.go). It returns the body bytes written.
func pumpBody(body io.Reader, write func([]byte) (int, error), flush func() error) (int64, error) {
	bp := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(bp)
	buf := bp[:]
	var n int64
	for {
		m, rerr := body.Read(buf)
		if m > 0 {
			k, werr := write(buf[:m])
			n += int64(k)
			if werr == nil && flush != nil {
				werr = flush()
			}
			if werr != nil {
				return n, fmt.Errorf("writing to client: %w", werr)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("reading from server: %w", rerr)
		}
	}
}

package intercept

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The HTTP/1.1 path: a client that speaks HTTP/1.1 to a server that
// speaks HTTP/1.1 (Serve offers the server HTTP/2 only when the client
// offered it) sends one request at a time, so one goroutine reads a
// request, sends it to the server, relays the answer and reads the next,
// over one server connection kept as long as both sides keep theirs.
// net/http's server and Transport did the same with four goroutines a
// connection, a context, a background read and two channel handoffs a
// request: on small requests that was a third of the interceptor's CPU.
// Requests are parsed by net/http's own ReadRequest and ReadResponse, and
// checked as its server checks them; TestHTTP1* hold both paths to the
// same behaviour. One difference remains: a client that leaves while its
// server has not answered yet is noticed when the answer comes, where
// net/http's server, reading in the background, noticed at once.

// maxHeaderBytes bounds a request head, as net/http's server does by
// default (http.DefaultMaxHeaderBytes, and the 4 KiB it allows beyond).
const maxHeaderBytes = http.DefaultMaxHeaderBytes + 4096

// freshFor is how long a kept server connection may have been idle for a
// request that cannot be sent twice (it has a body, or its method may
// change something) to go on it: the server may have closed it meanwhile,
// and such a request cannot be sent again on a new one. Servers close
// idle connections after seconds, at the least. (The proxy's plain-HTTP
// path keeps its connections by the same rule.)
const freshFor = time.Second

// max1xx bounds the interim (1xx) answers skipped before the final one.
const max1xx = 5

// continueTimeout is how long a request that says "Expect: 100-continue"
// waits for the server's 100 before its body is sent anyway, as
// http.Transport.ExpectContinueTimeout did here.
const continueTimeout = time.Second

// h1Bufs are the buffered readers and writers of HTTP/1.1 connections,
// reused across connections as net/http's server reuses its own.
var (
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// h1Conn is one side's connection with its buffers.
type h1Conn struct {
	conn net.Conn
	lim  limitReader
	r    *bufio.Reader
	w    *bufio.Writer
}

func newH1Conn(c net.Conn) *h1Conn {
	h := &h1Conn{conn: c, lim: limitReader{r: c, n: -1}}
	h.r = h1Readers.Get().(*bufio.Reader)
	h.r.Reset(&h.lim)
	h.w = h1Writers.Get().(*bufio.Writer)
	h.w.Reset(c)
	return h
}

// release returns the buffers; the connection is closed by its owner.
func (h *h1Conn) release() {
	h.r.Reset(nil)
	h1Readers.Put(h.r)
	h.w.Reset(nil)
	h1Writers.Put(h.w)
}

// limitReader reads at most n bytes (n < 0: no limit), so that a request
// head cannot grow without bound; hit says the limit was reached.
type limitReader struct {
	r   io.Reader
	n   int64
	hit bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n == 0 {
		l.hit = true
		return 0, io.EOF
	}
	if l.n > 0 && int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	if l.n > 0 {
		l.n -= int64(n)
	}
	return n, err
}

// serveHTTP1 serves the client's HTTP/1.1 connection until it closes, a
// side fails, or ctx is done (the proxy is shutting down); then it closes
// the client's TLS connection, as net/http's server does.
func (fw *forwarder) serveHTTP1(ctx context.Context, tc *tls.Conn, headerTimeout, idle time.Duration) {
	fw.h1ctx = ctx
	cl := newH1Conn(tc)
	defer func() {
		_ = tc.Close()
		cl.release()
		fw.closeH1()
	}()
	// Shutting down: every read and write of either side fails at once.
	stop := context.AfterFunc(ctx, func() {
		_ = tc.SetDeadline(aLongTimeAgo)
		fw.mu.Lock()
		fw.stopped = true
		if fw.h1 != nil {
			_ = fw.h1.conn.SetDeadline(aLongTimeAgo)
		}
		fw.mu.Unlock()
	})
	defer stop()
	for first := true; ; first = false {
		// Each deadline set here could undo the shutdown's, so ctx is
		// looked at after it is set.
		if !first {
			// Between requests the connection may idle for idle.
			if idle > 0 {
				_ = tc.SetReadDeadline(time.Now().Add(idle))
			}
			if ctx.Err() != nil {
				return
			}
			if _, err := cl.r.Peek(1); err != nil {
				return
			}
		}
		if headerTimeout > 0 {
			_ = tc.SetReadDeadline(time.Now().Add(headerTimeout))
		} else {
			_ = tc.SetReadDeadline(time.Time{})
		}
		if ctx.Err() != nil {
			return
		}
		cl.lim.n, cl.lim.hit = maxHeaderBytes, false
		req, err := http.ReadRequest(cl.r)
		if err == nil {
			err = checkRequest(req)
		}
		cl.lim.n = -1
		_ = tc.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			badRequest(cl, err, cl.lim.hit)
			return
		}
		if !fw.exchange(cl, req) {
			return
		}
	}
}

// aLongTimeAgo is a deadline in the past: it fails what waits at once.
var aLongTimeAgo = time.Unix(1, 0)

// checkRequest checks a request head as net/http's server does before it
// calls a handler.
func checkRequest(req *http.Request) error {
	if req.ProtoMajor != 1 {
		return &statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	if req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != http.MethodConnect {
		return &statusError{http.StatusBadRequest, "missing required Host header"}
	}
	if req.Host != "" && !httpguts.ValidHostHeader(req.Host) {
		return &statusError{http.StatusBadRequest, "malformed Host header"}
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return &statusError{http.StatusBadRequest, "invalid header name"}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return &statusError{http.StatusBadRequest, "invalid header value"}
			}
		}
	}
	return nil
}

type statusError struct {
	code int
	text string
}

func (e *statusError) Error() string { return strconv.Itoa(e.code) + " " + e.text }

// badRequest answers a request that could not be read, as net/http's
// server does, unless the client just went away.
func badRequest(cl *h1Conn, err error, tooLarge bool) {
	const headers = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	var se *statusError
	switch {
	case tooLarge:
		const msg = "431 Request Header Fields Too Large"
		cl.w.WriteString("HTTP/1.1 " + msg + headers + msg)
	case errors.As(err, &se):
		msg := strconv.Itoa(se.code) + " " + http.StatusText(se.code) + ": " + se.text
		cl.w.WriteString("HTTP/1.1 " + msg + headers + msg)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isTimeout(err) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET):
		return
	case strings.Contains(err.Error(), "unsupported transfer encoding"):
		cl.w.WriteString("HTTP/1.1 501 Not Implemented" + headers + "Unsupported transfer encoding")
	default:
		const msg = "400 Bad Request"
		cl.w.WriteString("HTTP/1.1 " + msg + headers + msg)
	}
	_ = cl.w.Flush()
}

// exchange forwards one request and relays its answer; it reports whether
// the client's connection can carry another request.
func (fw *forwarder) exchange(cl *h1Conn, req *http.Request) (keep bool) {
	f := fw.newFlow(req.Method, req.Host, req.URL.RequestURI())
	kept := fw.bodiesFor(&f)
	up := counter{keep: kept.req}
	defer func() {
		f.BytesUp = up.n.Load()
		kept.finish(&f)
		f.End = fw.i.o.Now()
		if fw.c.Record != nil {
			fw.c.Record(f)
		}
	}()
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody {
		up.r = req.Body
		if req.ProtoAtLeast(1, 1) && httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue") {
			up.r = &continueReader{r: req.Body, cl: cl}
		}
	}
	// The client's connection is kept only if what it sent was read to
	// its end, and it did not ask to close.
	keep = !req.Close && req.ProtoAtLeast(1, 1)
	if req.Method == http.MethodConnect {
		f.Status = http.StatusMethodNotAllowed
		f.Error = "CONNECT inside an intercepted connection"
		plainError(cl, http.StatusMethodNotAllowed, "pilotwire: 405 Method Not Allowed: CONNECT inside an intercepted connection", true)
		return false
	}
	// A request without a body leaves the client's side idle while the
	// server thinks (a long poll may think for minutes): watch it, so
	// that a client that leaves ends the request at once, as net/http's
	// server notices too.
	var watch *clientWatch
	if !hasBody {
		watch = fw.watchClient(cl)
	}
	resp, srv, err := fw.roundTrip(req, &up, hasBody)
	if watch != nil && watch.stop() {
		f.Error = "client went away before the answer"
		if err == nil {
			f.Status = resp.StatusCode
			srv.conn.Close() // so that Close does not read the rest of the body
			resp.Body.Close()
			fw.dropH1()
		}
		return false
	}
	if err != nil {
		var re *refusedError
		switch {
		case errors.As(err, &re):
			refusal(&f, re.msg)
			plainError(cl, http.StatusBadGateway, "pilotwire: 502 Bad Gateway: "+re.msg, !keep)
		case errors.Is(err, errClientBody):
			f.Error = "client went away before the answer"
			return false
		default:
			f.Status = http.StatusBadGateway
			f.Error = "forwarding to " + fw.name + ": " + err.Error()
			plainError(cl, http.StatusBadGateway, "pilotwire: 502 Bad Gateway: "+f.Error, !keep)
		}
		return keep && !hasBody
	}
	// resp.Body is closed below, before the connection's buffers go back
	// to their pool: Close reads what is left of the body.
	if cr, ok := up.r.(*continueReader); ok && cr.skip {
		keep = false // the server answered before the body, which is still on its way
	}
	removeHop(resp.Header)
	f.Status = resp.StatusCode
	f.Headers = HeaderLines(req.Header, resp.Header)
	f.Note = contentTypes(resp.Header.Get("Content-Type"), req.Header.Get("Content-Type"), hasBody)

	bodyAllowed := req.Method != http.MethodHead && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified
	chunked := false
	if bodyAllowed && resp.ContentLength < 0 {
		// A body of unknown length goes on in chunks, or to the close
		// for an HTTP/1.0 client.
		chunked = req.ProtoAtLeast(1, 1)
		if !chunked {
			keep = false
		}
	}
	w := cl.w
	writeStatusLine(w, resp)
	for k, vs := range resp.Header {
		if bodyAllowed && k == "Content-Length" {
			continue // written from ContentLength below
		}
		for _, v := range vs {
			writeField(w, k, v)
		}
	}
	if len(resp.Trailer) > 0 && chunked {
		for k := range resp.Trailer {
			writeField(w, "Trailer", k)
		}
	}
	switch {
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case bodyAllowed && resp.ContentLength >= 0:
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(w.AvailableBuffer(), resp.ContentLength, 10))
		w.WriteString("\r\n")
	}
	if !keep {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")

	down, err := relayBody(w, kept.response(resp.Body), chunked, resp.ContentLength < 0)
	f.BytesDown = down
	if err == nil && chunked {
		w.WriteString("0\r\n")
		for k, vs := range resp.Trailer {
			for _, v := range vs {
				writeField(w, k, v)
			}
		}
		w.WriteString("\r\n")
	}
	if err == nil {
		if err = w.Flush(); err != nil {
			err = fmt.Errorf("writing to client: %w", err)
		}
	}
	if err != nil {
		f.Error = "relaying the answer: " + err.Error()
		srv.conn.Close() // so that Close does not read the rest of the body
		resp.Body.Close()
		fw.dropH1()
		return false
	}
	resp.Body.Close()
	if resp.Close || srv.failed {
		fw.dropH1()
	} else {
		srv.idleAt = time.Now()
	}
	return keep
}

// clientWatch waits on the client's connection while its request is
// with the server (see exchange). Most answers come at once: the wait
// starts only after watchAfter, so that a quick exchange costs a timer,
// not a goroutine and a read.
type clientWatch struct {
	fw    *forwarder
	cl    *h1Conn
	timer *time.Timer
	gone  atomic.Bool

	mu               sync.Mutex
	started, stopped bool
	done             chan struct{} // closed when a started read has ended
}

// watchAfter is how long a request is with the server before its client
// is watched.
const watchAfter = 50 * time.Millisecond

// watchClient starts the watch of the request about to be sent. The
// connection's one clientWatch (and its timer) serves each of its
// requests in turn.
func (fw *forwarder) watchClient(cl *h1Conn) *clientWatch {
	w := fw.watch
	if w == nil {
		w = &clientWatch{fw: fw, cl: cl}
		w.timer = time.AfterFunc(watchAfter, w.wait)
		fw.watch = w
		return w
	}
	w.mu.Lock()
	w.started, w.stopped = false, false
	w.mu.Unlock()
	w.gone.Store(false)
	w.timer.Reset(watchAfter)
	return w
}

// wait reads from the client's connection without consuming (a next
// request, pipelined, stays in the buffer). If the read fails other than
// by stop's deadline, the client has gone: the server's connection is
// failed, so that the request's wait ends, and no other is opened for it.
//
// A timer that fired as its request ended may run this late, into the
// next request's watch: it then watches that one (the client's side is
// idle then too), and the next timer finds the read started.
func (w *clientWatch) wait() {
	w.mu.Lock()
	if w.stopped || w.started {
		w.mu.Unlock()
		return
	}
	w.started = true
	done := make(chan struct{})
	w.done = done
	w.mu.Unlock()
	defer close(done)
	if _, err := w.cl.r.Peek(1); err != nil && !isTimeout(err) {
		w.gone.Store(true)
		fw := w.fw
		fw.mu.Lock()
		fw.gone = true
		if fw.h1 != nil {
			_ = fw.h1.conn.SetDeadline(aLongTimeAgo)
		}
		fw.mu.Unlock()
	}
}

// stop ends the watch (a read deadline in the past stops the read; a
// timeout leaves crypto/tls's connection usable) and reports whether the
// client had gone.
func (w *clientWatch) stop() bool {
	w.timer.Stop()
	w.mu.Lock()
	w.stopped = true
	started, done := w.started, w.done
	w.mu.Unlock()
	if !started {
		return false
	}
	_ = w.cl.conn.SetReadDeadline(aLongTimeAgo)
	<-done
	_ = w.cl.conn.SetReadDeadline(time.Time{})
	return w.gone.Load()
}

// errClientBody is a request body that could not be read from the client.
var errClientBody = errors.New("reading the request body from the client")

// roundTrip sends req to the server over the kept connection (or a new
// one) and reads the answer's head, skipping interim (1xx) answers. A
// request that can be sent again (no body, and a method that changes
// nothing or an idempotency key) and fails on a kept connection before any
// byte of an answer came (the server had closed it meanwhile) is sent once
// more on a new one, as net/http's Transport does; one that cannot goes on
// the kept connection only if that is fresh (freshFor).
func (fw *forwarder) roundTrip(req *http.Request, body *counter, hasBody bool) (*http.Response, *h1Server, error) {
	replay := !hasBody && replayable(req)
	for attempt := 0; ; attempt++ {
		srv, reused, err := fw.h1Server(replay)
		if err != nil {
			return nil, nil, err
		}
		resp, err := srv.send(fw, req, body, hasBody)
		if err == nil {
			return resp, srv, nil
		}
		fw.dropH1()
		if errors.Is(err, errClientBody) {
			return nil, nil, err
		}
		if !reused || !replay || attempt > 0 || !srv.nothingRead {
			return nil, nil, err
		}
	}
}

// replayable says whether a request without a body may be sent twice.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// h1Server is the kept connection to the server.
type h1Server struct {
	*h1Conn
	nothingRead bool      // the last exchange failed before any byte of an answer
	failed      bool      // it cannot carry another request
	idleAt      time.Time // when its last exchange ended
}

// h1Server returns the kept server connection, or a new one (reused says
// which); for a request that cannot be sent twice (replay false), a kept
// one only if it is fresh.
func (fw *forwarder) h1Server(replay bool) (*h1Server, bool, error) {
	fw.mu.Lock()
	srv, stopped, gone := fw.h1, fw.stopped, fw.gone
	fw.mu.Unlock()
	if stopped {
		return nil, false, errors.New("shutting down")
	}
	if gone {
		return nil, false, errors.New("the client went away")
	}
	if srv != nil && !replay && !srv.idleAt.IsZero() && time.Since(srv.idleAt) > freshFor {
		fw.dropH1()
		srv = nil
	}
	if srv != nil {
		return srv, true, nil
	}
	conn, err := fw.dialTLS(fw.h1ctx, "", "") // a shutdown stops a slow dial too
	if err != nil {
		return nil, false, err
	}
	srv = &h1Server{h1Conn: newH1Conn(conn)}
	fw.mu.Lock()
	if fw.stopped || fw.gone {
		fw.mu.Unlock()
		conn.Close()
		srv.release()
		return nil, false, errors.New("shutting down, or the client went away")
	}
	fw.h1 = srv
	fw.mu.Unlock()
	return srv, false, nil
}

// dropH1 closes the kept server connection: it is broken, or the server
// asked to close it.
func (fw *forwarder) dropH1() {
	fw.mu.Lock()
	srv := fw.h1
	fw.h1 = nil
	fw.mu.Unlock()
	if srv != nil {
		srv.conn.Close()
		srv.release()
	}
}

func (fw *forwarder) closeH1() { fw.dropH1() }

// send writes req (its head, then its body) and reads the answer's head.
func (s *h1Server) send(fw *forwarder, req *http.Request, body *counter, hasBody bool) (*http.Response, error) {
	s.nothingRead = true
	w := s.w
	w.WriteString(req.Method)
	w.WriteByte(' ')
	if strings.HasPrefix(req.RequestURI, "/") || req.RequestURI == "*" {
		w.WriteString(req.RequestURI) // as the client wrote it
	} else {
		w.WriteString(req.URL.RequestURI())
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(fw.authority(req.Host))
	w.WriteString("\r\n")
	conn := req.Header["Connection"]
	chunked := hasBody && req.ContentLength < 0
	for k, vs := range req.Header {
		if isHop(k, conn) || chunked && k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			writeField(w, k, v)
		}
	}
	if chunked {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	w.WriteString("\r\n")
	if err := w.Flush(); err != nil {
		s.failed = true
		return nil, err
	}
	if hasBody {
		if cr, ok := body.r.(*continueReader); ok {
			// Wait a moment for the server's 100 (or its refusal)
			// before the body is sent.
			resp, err := s.waitContinue(req)
			if resp != nil || err != nil {
				cr.skip = true
				s.failed = true // the body was not sent: the connection is out of step
				return resp, err
			}
		}
		if err := writeBody(w, body, chunked); err != nil {
			s.failed = true
			return nil, err
		}
	}
	for range max1xx + 1 {
		if _, err := s.r.Peek(1); err != nil {
			s.failed = true
			return nil, err
		}
		s.nothingRead = false
		resp, err := http.ReadResponse(s.r, req)
		if err != nil {
			s.failed = true
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // interim: the client gets the final answer only
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			s.failed = true
			return nil, errors.New("server switched protocols, though no upgrade was asked")
		}
		return resp, nil
	}
	s.failed = true
	return nil, errors.New("too many interim (1xx) answers")
}

// waitContinue waits up to continueTimeout for the server's first answer
// to a request that expects 100-continue: nil, nil when it said 100 or
// said nothing (the body is sent), or its final answer.
func (s *h1Server) waitContinue(req *http.Request) (*http.Response, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(continueTimeout))
	_, err := s.r.Peek(1)
	_ = s.conn.SetReadDeadline(time.Time{})
	if err != nil {
		if isTimeout(err) {
			return nil, nil
		}
		return nil, err
	}
	resp, err := http.ReadResponse(s.r, req)
	if err != nil {
		return nil, err
	}
	s.nothingRead = false
	if resp.StatusCode == http.StatusContinue {
		return nil, nil
	}
	return resp, nil
}

// writeBody sends a request body, in chunks when its length is unknown.
func writeBody(w *bufio.Writer, body io.Reader, chunked bool) error {
	bp := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(bp)
	buf := bp[:]
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if chunked {
				writeChunkHead(w, n)
			}
			w.Write(buf[:n])
			if chunked {
				w.WriteString("\r\n")
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%w: %w", errClientBody, rerr)
		}
	}
	if chunked {
		w.WriteString("0\r\n\r\n")
	}
	return w.Flush()
}

// relayBody copies an answer's body to the client, in chunks when chunked;
// a body of unknown length is flushed as it comes (a stream must not wait
// in a buffer). It returns the body bytes written. (Reading the next piece
// in a goroutine of its own while this one is written, so that a big body
// could use two CPUs, measured no faster on 2 CPUs: left out.)
func relayBody(w *bufio.Writer, body io.Reader, chunked, flush bool) (int64, error) {
	write := w.Write
	if chunked {
		write = func(p []byte) (int, error) {
			writeChunkHead(w, len(p))
			k, err := w.Write(p)
			if err == nil {
				_, err = w.WriteString("\r\n")
			}
			return k, err
		}
	}
	var flushFn func() error
	if flush {
		flushFn = w.Flush
	}
	return pumpBody(body, write, flushFn)
}

// writeStatusLine writes the answer's status line with the server's
// reason phrase, or the standard one when it gave none.
func writeStatusLine(w *bufio.Writer, resp *http.Response) {
	code := strconv.Itoa(resp.StatusCode)
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, code))
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	w.WriteString("HTTP/1.1 ")
	w.WriteString(code)
	w.WriteByte(' ')
	w.WriteString(reason)
	w.WriteString("\r\n")
}

func writeChunkHead(w *bufio.Writer, n int) {
	w.Write(strconv.AppendUint(w.AvailableBuffer(), uint64(n), 16))
	w.WriteString("\r\n")
}

func writeField(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(v)
	w.WriteString("\r\n")
}

// isHop says whether header k is of one hop only (hopHeaders, or named by
// the message's Connection header, conn).
func isHop(k string, conn []string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	for _, f := range conn {
		for tok := range strings.SplitSeq(f, ",") {
			if tok = textproto.TrimString(tok); tok != "" && strings.EqualFold(tok, k) {
				return true
			}
		}
	}
	return false
}

// plainError answers the client with a short text, as http.Error does.
func plainError(cl *h1Conn, code int, msg string, closing bool) {
	w := cl.w
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(code))
	w.WriteByte(' ')
	w.WriteString(http.StatusText(code))
	w.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ")
	w.WriteString(strconv.Itoa(len(msg) + 1))
	w.WriteString("\r\n")
	if closing {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	w.WriteString(msg)
	w.WriteString("\n")
	_ = w.Flush()
}

// continueReader is the body of a request that expects 100-continue: its
// first read tells the client to go on, as net/http's server does.
type continueReader struct {
	r    io.Reader
	cl   *h1Conn
	sent bool
	skip bool // the server answered before the body: it is not read
}

func (c *continueReader) Read(p []byte) (int, error) {
	if c.skip {
		return 0, io.EOF
	}
	if !c.sent {
		c.sent = true
		c.cl.w.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.cl.w.Flush(); err != nil {
			return 0, err
		}
	}
	return c.r.Read(p)
}

func (c *continueReader) Close() error { return nil }

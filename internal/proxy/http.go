package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// isHopHeader reports whether the canonical header name k is one of the
// hop-by-hop headers of RFC 9110 section 7.6.1, or a proxy one; they are
// never forwarded.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// removeHopHeaders deletes the hop-by-hop headers from h, including those
// the Connection header names. (One pass over h's few keys costs less
// than a lookup of each hop-by-hop name.)
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for k := range h {
		if isHopHeader(k) {
			delete(h, k)
		}
	}
}

// refusal is a dial refused by the target rules.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

// clientBody is a request body read from the client connection. It sends
// "100 Continue" the first time it is read when the client asked for it,
// and can be cut off so that the Transport, which may read a body after
// RoundTrip returns, never touches the connection afterwards.
type clientBody struct {
	mu       sync.Mutex
	r        io.ReadCloser
	c        *conn
	expect   bool
	eof      bool
	detached bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.detached {
		return 0, errors.New("proxy: request body detached")
	}
	if b.expect {
		b.expect = false
		if _, err := io.WriteString(&b.c.cc, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			return 0, err
		}
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *clientBody) Close() error { return nil }

// detach stops all further reads and reports whether the body was read to
// its end.
func (b *clientBody) detach() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.detached = true
	return b.eof
}

// forward passes a plain-HTTP request to its server and the response back.
// It reports whether the client connection may carry another request.
func (x *exchange) forward() bool {
	c, p, req, f := x.c, x.c.p, x.req, &x.f
	keep := !req.Close
	expect := strings.EqualFold(req.Header.Get("Expect"), "100-continue")

	out := &http.Request{
		Method:        req.Method,
		URL:           req.URL,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        req.Header,
		Host:          req.Host,
		ContentLength: req.ContentLength,
	}
	if req.URL.Host != "" {
		out.Host = req.URL.Host
	}
	// An Upgrade (WebSocket, …) of a bodiless request is passed on; after
	// a 101 the connection becomes a relay of both directions.
	var upgrade []string
	if req.ContentLength == 0 && headerHasToken(req.Header, "Connection", "upgrade") {
		upgrade = req.Header["Upgrade"]
	}
	removeHopHeaders(out.Header)
	if len(upgrade) > 0 {
		out.Header["Connection"] = []string{"Upgrade"}
		out.Header["Upgrade"] = upgrade
	}
	p.addVia(out.Header, req)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // the Transport would add its own
	}
	var body *clientBody
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		body = &clientBody{r: req.Body, c: c, expect: expect}
		out.Body = body
		if req.ContentLength < 0 {
			out.TransferEncoding = []string{"chunked"}
		}
	} else {
		out.Header.Del("Expect")
	}
	var resp *http.Response
	var direct *upConn
	var err error
	switch {
	case len(upgrade) > 0 && f.Scheme == "http":
		resp, direct, err = x.roundTripUpgrade(out)
	case body == nil && p.Upstream == nil && f.Scheme == "http" && !p.transportOnly:
		resp, direct, err = x.roundTripDirect(out)
	default:
		resp, err = p.transport.RoundTrip(out.WithContext(x.context()))
	}
	bodyDone := func() bool {
		if body == nil {
			return true
		}
		return body.detach()
	}
	if err != nil {
		// The body may still be in the Transport's hands: cut it off.
		complete := bodyDone()
		var r *refusal
		if errors.As(err, &r) {
			return x.refuse(http.StatusForbidden, r.reason, nil) && complete
		}
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			// The server is not who it says: refused, not just failed.
			reason := fmt.Sprintf("TLS certificate of %s not valid: %v", f.Host, cv.Err)
			return x.refuse(http.StatusBadGateway, reason, nil) && complete
		}
		status := http.StatusBadGateway
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			status = http.StatusGatewayTimeout
		}
		c.writeError(status, err.Error(), nil, !keep || !complete)
		f.Status = status
		f.Error = err.Error()
		x.finish()
		return keep && complete
	}
	defer resp.Body.Close()
	f.Status = resp.StatusCode
	if len(upgrade) > 0 && resp.StatusCode == http.StatusSwitchingProtocols && direct != nil {
		c.opened = x.upgraded(resp, direct)
		return false
	}

	noBody := req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified || resp.StatusCode < 200
	chunked := false
	switch {
	case noBody:
	case resp.ContentLength >= 0:
	case req.ProtoAtLeast(1, 1):
		chunked = true
	default:
		keep = false // HTTP/1.0 client: the end of the body is the end of the connection
	}
	if resp.Close && resp.ContentLength < 0 && !chunked && !noBody {
		keep = false
	}

	bw := c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(resp.Status)
	bw.WriteString("\r\n")
	removeHopHeaders(resp.Header)
	for k, vs := range resp.Header {
		if k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if resp.ContentLength >= 0 && resp.StatusCode != http.StatusNoContent && resp.StatusCode >= 200 {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(resp.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	if chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !keep {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")

	var copyErr, writeErr error
	if !noBody {
		copyErr, writeErr = x.copyBody(resp, chunked)
	}
	if direct != nil {
		// Before resp.Body.Close (deferred), which would drain the rest.
		x.serverDone(direct, resp, copyErr == nil && writeErr == nil)
	}
	if writeErr == nil {
		writeErr = bw.Flush()
	}
	complete := bodyDone()
	switch {
	case writeErr != nil:
		f.Error = "writing to client: " + writeErr.Error()
		keep = false
	case copyErr != nil:
		f.Error = "reading from server: " + copyErr.Error()
		keep = false
	}
	x.finish()
	// A server may answer before reading the whole request body (a 413, a
	// 401); what is left of it would be taken for the next request.
	return keep && complete
}

// headerHasToken reports whether a comma-separated field of h holds token,
// in any case.
func headerHasToken(h http.Header, field, token string) bool {
	for _, v := range h[field] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// roundTripUpgrade sends an Upgrade request on a server connection of its
// own (it may become a relay): to the server, or through the upstream
// proxy. The caller must call serverDone unless the answer is a 101.
func (x *exchange) roundTripUpgrade(out *http.Request) (*http.Response, *upConn, error) {
	p := x.c.p
	if p.Upstream == nil {
		return x.roundTripDirect(out)
	}
	nc, err := p.dialUpstream(x.context())
	if err != nil {
		return nil, nil, err
	}
	uc := &upConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 4<<10), upstream: true}
	if !x.setServer(uc) {
		nc.Close()
		return nil, nil, net.ErrClosed
	}
	if u := p.Upstream.User; u != nil {
		pass, _ := u.Password()
		out.Header["Proxy-Authorization"] = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass))}
	}
	resp, err := uc.send(out)
	if err != nil {
		x.setServer(nil)
		nc.Close()
		return nil, nil, err
	}
	return resp, uc, nil
}

// upgraded answers the client's Upgrade with the server's 101 and turns
// the exchange into a relay of both directions (a tunnel without a
// ClientHello), recorded as the one flow of the exchange. It returns the
// tunnel for serve to run, or nil.
func (x *exchange) upgraded(resp *http.Response, uc *upConn) *tunnel {
	c := x.c
	x.setServer(nil)
	upgrade := resp.Header["Upgrade"]
	removeHopHeaders(resp.Header)
	bw := c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(resp.Status)
	bw.WriteString("\r\nConnection: Upgrade\r\n")
	for _, v := range upgrade {
		bw.WriteString("Upgrade: ")
		bw.WriteString(v)
		bw.WriteString("\r\n")
	}
	_ = resp.Header.Write(bw)
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		uc.nc.Close()
		x.f.Error = "writing to client: " + err.Error()
		x.finish()
		return nil
	}
	t := &tunnel{c: c, server: uc.nc, f: &x.f, plain: true}
	// Bytes the server sent after its 101 are the start of the relay.
	if n := uc.br.Buffered(); n > 0 {
		t.early = make([]byte, n)
		_, _ = io.ReadFull(uc.br, t.early)
	}
	// The flow counts the exchange's heads too.
	up, down := x.bytes()
	t.up.Store(up)
	t.down.Store(down)
	return c.startTunnel(t)
}

// openAfter is how long a plain-HTTP exchange runs before its flow is
// recorded as open, so that long downloads are visible while they last.
const openAfter = time.Second

// copyBody copies the response body to the client, flushing after each
// read so that streamed responses are not held back.
func (x *exchange) copyBody(resp *http.Response, chunked bool) (readErr, writeErr error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	bw := x.c.bw
	recordedOpen := false
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if chunked {
				bw.WriteString(strconv.FormatInt(int64(n), 16))
				bw.WriteString("\r\n")
			}
			bw.Write(buf[:n])
			if chunked {
				bw.WriteString("\r\n")
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err, bw.Flush()
		}
		if werr := bw.Flush(); werr != nil {
			return nil, werr
		}
		if !recordedOpen && time.Since(x.f.Start) > openAfter {
			recordedOpen = true
			x.recordOpen()
		}
	}
	if chunked {
		bw.WriteString("0\r\n")
		for k, vs := range resp.Trailer {
			for _, v := range vs {
				fmt.Fprintf(bw, "%s: %s\r\n", k, v)
			}
		}
		bw.WriteString("\r\n")
	}
	return nil, nil
}

// dialForTransport dials for the plain-HTTP Transport: the upstream proxy,
// or the target after checking its resolved addresses.
func (p *Proxy) dialForTransport(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.Upstream != nil {
		return p.dialUpstream(ctx)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(portStr)
	return p.dialTarget(ctx, host, port)
}

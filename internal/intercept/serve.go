package intercept

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// rejectWindow is how soon after the handshake a client that closes
// without sending a request is taken to have refused the certificate: a
// client that pins its server's key checks it after the handshake and
// hangs up at once, while an idle connection closes much later.
const rejectWindow = 2 * time.Second

// Conn is a tunnel to intercept, as the proxy hands it over after its 200.
type Conn struct {
	// Client is the client's side; its first bytes are the ClientHello.
	Client net.Conn
	// Server is a connection to the CONNECT target the proxy dialed (with
	// its target rules), not used yet.
	Server net.Conn
	// Redial opens another connection to the same target, the same way.
	Redial func(ctx context.Context) (net.Conn, error)
	Host   string // the CONNECT host
	Port   int    // the CONNECT port
	SNI    string // the ClientHello's server_name; may be empty
	// ALPN is what the ClientHello offered. The server is offered HTTP/2
	// only when the client offered it: a client that speaks HTTP/1.1
	// sends one request at a time, which HTTP/2 to the server would only
	// make dearer for both (its framing, and a goroutine per stream in Go
	// servers), and the server sees the protocol the device asked for.
	ALPN []string
	// RootCAs verify the servers' certificates; nil means the system's.
	RootCAs *x509.CertPool
	// Tunnel is the tunnel's flow: its requests take their Key prefix,
	// client and device from it.
	Tunnel flow.Flow
	// Record receives each request's flow. It must not block.
	Record func(flow.Flow)
	// Refused, if set, is told at once when the server is refused (its
	// certificate did not verify), before the client is served: the
	// tunnel's flow says so even if the proxy shuts down while the client
	// keeps the connection open.
	Refused func(why string)
	// HandshakeTimeout limits each TLS handshake, HeaderTimeout the
	// reading of a request head, IdleTimeout a connection waiting for its
	// next request.
	HandshakeTimeout, HeaderTimeout, IdleTimeout time.Duration
}

// Result says how an intercepted tunnel went, for its flow.
type Result struct {
	// Fallback: nothing was read from either side (no certificate could
	// be made for the name); the proxy should tunnel as usual.
	Fallback bool
	Protocol string // negotiated with the client: "h2" or "http/1.1"
	Requests int64
	// Refused says why the server was refused (its certificate did not
	// verify): the client was answered 502 and the tunnel is a refusal.
	Refused string
	// Learned is set when the client refused the minted certificate: the
	// host is now passed through.
	Learned *flow.PassThrough
	// Err is how the connection failed, if it did.
	Err error
}

// Serve intercepts one tunnel: it mints a certificate for the SNI (or the
// CONNECT host), verifies the server's, terminates the client's TLS,
// serves its requests, and returns when the client's connection ends (or
// ctx is cancelled: the proxy is shutting down). It closes neither
// connection it was given.
func (i *Interceptor) Serve(ctx context.Context, c Conn) Result {
	name := c.SNI
	if name == "" {
		name = c.Host
	}
	leaf, err := i.leaves.Get(name)
	if err != nil {
		return Result{Fallback: true, Err: err}
	}
	var res Result
	upProtos := upstreamProtos(c.ALPN)
	up, err := handshake(ctx, tls.Client(c.Server, upstreamConfig(name, c.RootCAs, upProtos)), c.HandshakeTimeout)
	if err != nil {
		// The client is still served, so that it reads why in a 502;
		// every request is then refused.
		res.Refused = upstreamRefusal(name, err)
		up = nil
		if c.Refused != nil {
			c.Refused(res.Refused)
		}
	}
	srvCfg := &tls.Config{Certificates: []tls.Certificate{*leaf}, NextProtos: []string{"h2", "http/1.1"}}
	tc, err := handshake(ctx, tls.Server(c.Client, srvCfg), c.HandshakeTimeout)
	if err != nil {
		if up != nil {
			up.Close()
		}
		if ctx.Err() != nil || isTimeout(err) {
			res.Err = fmt.Errorf("client TLS handshake: %w", err)
			return res
		}
		res.Learned = i.refusedBy(c, name, clientRefusal(err))
		res.Err = err
		return res
	}
	shook := i.o.Now()
	cs := tc.ConnectionState()
	res.Protocol = cs.NegotiatedProtocol
	if res.Protocol == "" {
		res.Protocol = "http/1.1"
	}
	fw := &forwarder{i: i, c: &c, name: name, proto: res.Protocol, tlsVersion: tlsVersionName(cs.Version), refused: res.Refused, first: up, upProtos: upProtos}
	defer fw.close()
	if http1Path && res.Protocol == "http/1.1" && up != nil && up.ConnectionState().NegotiatedProtocol != "h2" {
		// One request at a time both ways: http1.go, on this goroutine.
		fw.upProtos = []string{"http/1.1"}
		fw.serveHTTP1(ctx, tc, c.HeaderTimeout, c.IdleTimeout)
	} else {
		fw.tr = &http.Transport{
			DialTLSContext:     fw.dialTLS,
			ForceAttemptHTTP2:  true,
			DisableCompression: true, // bytes pass as they are
			// An HTTP/2 client's requests in flight each need a
			// connection to a server that speaks only HTTP/1.1; with 8
			// kept, 64 requests at once meant a new connection (and
			// its TLS handshake) for 7 requests in 10
			// (BenchmarkServeH2Client).
			MaxIdleConnsPerHost:   maxServerConns,
			IdleConnTimeout:       c.IdleTimeout,
			ExpectContinueTimeout: time.Second,
		}
		serveConn(ctx, tc, fw, c.HeaderTimeout, c.IdleTimeout)
	}
	res.Requests = fw.seq.Load()
	if res.Requests == 0 && res.Refused == "" && ctx.Err() == nil && i.o.Now().Sub(shook) < rejectWindow {
		res.Learned = i.refusedBy(c, name, "client closed right after the TLS handshake, with no request")
	}
	return res
}

// maxServerConns is how many idle server connections an intercepted
// HTTP/2 connection keeps, for as many requests in flight.
const maxServerConns = 64

// http1Path serves HTTP/1.1 clients of HTTP/1.1 servers on http1.go's
// path; tests turn it off to hold net/http's to the same behaviour.
var http1Path = true

// upstreamProtos is what the server is offered, given what the client
// offered (Conn.ALPN).
func upstreamProtos(client []string) []string {
	for _, p := range client {
		if p == "h2" {
			return []string{"h2", "http/1.1"}
		}
	}
	return []string{"http/1.1"}
}

// upstreamConfig verifies the server's certificate for name with roots
// (nil: the system's).
func upstreamConfig(name string, roots *x509.CertPool, protos []string) *tls.Config {
	return &tls.Config{ServerName: name, RootCAs: roots, NextProtos: protos}
}

// refusedBy learns that the client of c refused the certificate for name.
func (i *Interceptor) refusedBy(c Conn, name, reason string) *flow.PassThrough {
	p := flow.PassThrough{Host: name, Reason: reason, Learned: i.o.Now(), Client: c.Tunnel.Client, Flow: c.Tunnel.Key}
	i.learn(p)
	return &p
}

// clientRefusal says in a phrase how a client's handshake failed.
func clientRefusal(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "client closed the connection during the TLS handshake"
	}
	return "client refused the certificate: " + err.Error()
}

// upstreamRefusal says why the server's side failed.
func upstreamRefusal(name string, err error) string {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return fmt.Sprintf("server certificate for %s not valid: %v", name, cve.Err)
	}
	return fmt.Sprintf("TLS handshake with server %s: %v", name, err)
}

// handshake runs tc's handshake within timeout.
func handshake(ctx context.Context, tc *tls.Conn, timeout time.Duration) (*tls.Conn, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS10:
		return "1.0"
	}
	return ""
}

// quiet drops net/http's own log lines (a client that hangs up mid-request
// is a flow's error, not a log line).
var quiet = log.New(io.Discard, "", 0)

// serveConn serves the client's connection with net/http's server, in
// the protocol its handshake chose (HTTP/2 or HTTP/1.1), until the
// connection closes or ctx is done (the proxy is shutting down).
func serveConn(ctx context.Context, conn *tls.Conn, h http.Handler, headerTimeout, idle time.Duration) {
	done := make(chan struct{})
	var once sync.Once
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       idle,
		ErrorLog:          quiet,
		Protocols:         &protocols,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				once.Do(func() { close(done) })
			}
		},
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	_ = srv.Serve(&oneListener{conn: conn})
	<-done
}

// oneListener hands net/http's server one connection, then reports
// itself closed (the server goes on serving that connection).
type oneListener struct {
	mu   sync.Mutex
	conn net.Conn
}

func (l *oneListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.conn
	l.conn = nil
	if c == nil {
		return nil, net.ErrClosed
	}
	return c, nil
}

func (l *oneListener) Close() error { return nil }

func (l *oneListener) Addr() net.Addr { return dummyAddr{} }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "tcp" }
func (dummyAddr) String() string  { return "intercepted" }

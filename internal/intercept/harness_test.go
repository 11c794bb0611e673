package intercept

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/ca"
	"github.com/pilotwire/pilotwire/internal/flow"
)

// harness is one intercepted connection on loopback: a raw TLS client
// (trusting the lab CA) whose connection Serve intercepts, forwarding to
// an httptest TLS server (speaking HTTP/2 too when h2).
type harness struct {
	tb     testing.TB
	srv    *httptest.Server
	client *tls.Conn
	br     *bufio.Reader
	done   chan Result
	cancel context.CancelFunc

	mu    sync.Mutex
	flows []flow.Flow
}

// newHarness starts Serve, with o (and the test's CA), for a client that
// offers alpn in its ClientHello (Conn.ALPN) and negotiates clientALPN
// with the proxy.
func newHarness(tb testing.TB, h http.Handler, h2 bool, alpn, clientALPN []string, o Options, configure func(*httptest.Server)) *harness {
	tb.Helper()
	lab, err := ca.Create(filepath.Join(tb.TempDir(), "ca"), "test", time.Now(), false)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.Config.ErrorLog = quiet // connections cut when a test ends are not news
	if configure != nil {
		configure(srv)
	}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	upAddr := srv.Listener.Addr().String()
	_, portText, _ := net.SplitHostPort(upAddr)
	port, _ := strconv.Atoi(portText)
	upRoots := x509.NewCertPool()
	upRoots.AddCert(srv.Certificate())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	clientSide := <-accepted
	dial := func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", upAddr)
	}
	server, err := dial(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hs := &harness{tb: tb, srv: srv, done: make(chan Result, 1), cancel: cancel}
	tb.Cleanup(func() {
		cancel()
		raw.Close()
		clientSide.Close()
		server.Close()
	})
	o.CA = lab
	ic := New(o)
	go func() {
		hs.done <- ic.Serve(ctx, Conn{
			Client: clientSide, Server: server, Redial: dial,
			Host: "example.com", Port: port, SNI: "example.com", ALPN: alpn,
			RootCAs: upRoots,
			Tunnel:  flow.Flow{Key: "t1", Client: "127.0.0.1", Kind: flow.KindConnect},
			Record: func(f flow.Flow) {
				hs.mu.Lock()
				hs.flows = append(hs.flows, f)
				hs.mu.Unlock()
			},
			// as the proxy sets them (its defaults)
			HandshakeTimeout: 30 * time.Second, HeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		})
	}()
	labRoots := x509.NewCertPool()
	labRoots.AddCert(lab.Cert)
	hs.client = tls.Client(raw, &tls.Config{ServerName: "example.com", RootCAs: labRoots, NextProtos: clientALPN})
	if err := hs.client.Handshake(); err != nil {
		tb.Fatal(err)
	}
	hs.br = bufio.NewReader(hs.client)
	return hs
}

// send writes raw bytes to the proxy.
func (hs *harness) send(s string) {
	hs.tb.Helper()
	if _, err := hs.client.Write([]byte(s)); err != nil {
		hs.tb.Fatal(err)
	}
}

// read reads one response to a request of method.
func (hs *harness) read(method string) *http.Response {
	hs.tb.Helper()
	_ = hs.client.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(hs.br, &http.Request{Method: method})
	if err != nil {
		hs.tb.Fatal(err)
	}
	return resp
}

// end closes the client's side and returns Serve's result.
func (hs *harness) end() Result {
	hs.tb.Helper()
	hs.client.Close()
	select {
	case r := <-hs.done:
		return r
	case <-time.After(10 * time.Second):
		hs.tb.Fatal("Serve did not return within 10 s of the client closing")
		return Result{}
	}
}

func (hs *harness) recorded() []flow.Flow {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return append([]flow.Flow(nil), hs.flows...)
}

package intercept

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/ca"
	"github.com/pilotwire/pilotwire/internal/flow"
)

// BenchmarkServe is the per-request path of an intercepted connection:
// small GETs, one after another, from an HTTP/1.1 client on one
// keep-alive connection through Serve to a TLS server on loopback that
// speaks both HTTP/2 and HTTP/1.1, each request recorded. The server is
// offered HTTP/1.1 (upstream=h1: the client offered only that) or HTTP/2
// (upstream=h2: as if the ClientHello had offered it too). The client, the
// server and the interceptor all run in this process, so ns/op and
// allocs/op are theirs together; compare runs, not absolute figures.
//
//	go test ./internal/intercept -run '^$' -bench Serve -benchmem
func BenchmarkServe(b *testing.B) {
	for _, h2 := range []bool{true, false} {
		name := "upstream=h1"
		if h2 {
			name = "upstream=h2"
		}
		b.Run(name, func(b *testing.B) { benchServe(b, h2) })
	}
}

func benchServe(b *testing.B, h2 bool) {
	lab, err := ca.Create(filepath.Join(b.TempDir(), "ca"), "bench", time.Now(), false)
	if err != nil {
		b.Fatal(err)
	}
	var upMajor atomic.Int32 // the protocol the server was spoken to in
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upMajor.Store(int32(r.ProtoMajor))
		io.WriteString(w, "hello, world\n")
	}))
	srv.EnableHTTP2 = true
	alpn := []string{"http/1.1"}
	if h2 {
		alpn = []string{"h2", "http/1.1"}
	}
	srv.StartTLS()
	b.Cleanup(srv.Close)
	upAddr := srv.Listener.Addr().String()
	_, portText, _ := net.SplitHostPort(upAddr)
	port, _ := strconv.Atoi(portText)
	upRoots := x509.NewCertPool()
	upRoots.AddCert(srv.Certificate())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
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
		b.Fatal(err)
	}
	defer raw.Close()
	clientSide := <-accepted
	defer clientSide.Close()
	dial := func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", upAddr)
	}
	server, err := dial(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()

	var recorded int
	ic := New(Options{CA: lab})
	done := make(chan Result, 1)
	go func() {
		done <- ic.Serve(b.Context(), Conn{
			Client: clientSide, Server: server, Redial: dial,
			Host: "example.com", Port: port, SNI: "example.com", ALPN: alpn,
			RootCAs: upRoots,
			Tunnel:  flow.Flow{Key: "t1", Client: "127.0.0.1", Kind: flow.KindConnect},
			Record:  func(flow.Flow) { recorded++ },
			// as the proxy sets them (its defaults)
			HandshakeTimeout: 30 * time.Second, HeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		})
	}()

	labRoots := x509.NewCertPool()
	labRoots.AddCert(lab.Cert)
	tc := tls.Client(raw, &tls.Config{ServerName: "example.com", RootCAs: labRoots, NextProtos: []string{"http/1.1"}})
	br := bufio.NewReader(tc)
	req := []byte("GET /small?a=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\nAuthorization: Bearer x\r\n\r\n")
	roundTrip := func() {
		if _, err := tc.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	roundTrip() // the handshakes
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		roundTrip()
	}
	b.StopTimer()
	tc.Close()
	res := <-done
	if res.Requests != int64(b.N)+1 || recorded != b.N+1 {
		b.Fatalf("%d requests served, %d recorded, want %d", res.Requests, recorded, b.N+1)
	}
	if want := map[bool]int32{true: 2, false: 1}[h2]; upMajor.Load() != want {
		b.Fatalf("the server was spoken to in HTTP/%d, want HTTP/%d", upMajor.Load(), want)
	}
}

package intercept

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
)

// BenchmarkServe is the per-request path of an intercepted connection:
// small GETs, one after another, from an HTTP/1.1 client on one
// keep-alive connection through Serve to a TLS server on loopback that
// speaks both HTTP/2 and HTTP/1.1, each request recorded. The server is
// offered HTTP/1.1 (upstream=h1: the client offered only that) or HTTP/2
// (upstream=h2: as if the ClientHello had offered it too). The client,
// the server and the interceptor all run in this process, so ns/op and
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
	var upMajor atomic.Int32 // the protocol the server was spoken to in
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upMajor.Store(int32(r.ProtoMajor))
		io.WriteString(w, "hello, world\n")
	})
	alpn := []string{"http/1.1"}
	if h2 {
		alpn = []string{"h2", "http/1.1"}
	}
	hs := newHarness(b, h, true, alpn, []string{"http/1.1"}, Options{}, nil)
	const req = "GET /small?a=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\nAuthorization: Bearer x\r\n\r\n"
	roundTrip := func() {
		hs.send(req)
		resp := hs.read("GET")
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
	res := hs.end()
	if res.Requests != int64(b.N)+1 || len(hs.recorded()) != b.N+1 {
		b.Fatalf("%d requests served, %d recorded, want %d", res.Requests, len(hs.recorded()), b.N+1)
	}
	if want := map[bool]int32{true: 2, false: 1}[h2]; upMajor.Load() != want {
		b.Fatalf("the server was spoken to in HTTP/%d, want HTTP/%d", upMajor.Load(), want)
	}
}

// BenchmarkServeH2Client is an HTTP/2 client sending many requests at
// once on its one intercepted connection to a server that speaks only
// HTTP/1.1, which needs a connection a request in flight: served by
// net/http's server and Transport. dials/kreq is the server connections
// opened a thousand requests.
//
//	go test ./internal/intercept -run '^$' -bench ServeH2Client -benchmem
func BenchmarkServeH2Client(b *testing.B) {
	var dials atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello, world\n") })
	hs := newHarness(b, h, false, []string{"h2", "http/1.1"}, []string{"h2"}, Options{}, func(s *httptest.Server) {
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				dials.Add(1)
			}
		}
	})
	var once atomic.Bool
	tr := &http.Transport{ForceAttemptHTTP2: true, DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
		if once.Swap(true) {
			return nil, errors.New("one connection only")
		}
		return hs.client, nil
	}}
	defer tr.CloseIdleConnections()
	get := func() {
		resp, err := tr.RoundTrip(&http.Request{Method: "GET", URL: &url.URL{Scheme: "https", Host: "example.com", Path: "/small"}, Header: http.Header{}})
		if err != nil {
			b.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			b.Errorf("%s %d", resp.Proto, resp.StatusCode)
		}
	}
	get()
	dials.Store(0)
	b.ReportAllocs()
	b.SetParallelism(32) // 64 requests in flight on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(dials.Load())*1000/float64(b.N), "dials/kreq")
}

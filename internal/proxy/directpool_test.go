package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// rawServer is a plain-HTTP server on loopback that answers each request
// it reads on a connection with answer(n), n counting the connection's
// requests from 1; an empty answer closes the connection without a word.
// It counts the connections it accepted.
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int64
}

func newRawServer(t *testing.T, answer func(n int) string) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 1; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.Body.Close()
					a := answer(n)
					if a == "" {
						return
					}
					if _, err := io.WriteString(c, a); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() + "/" }

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestDirectPath checks the direct path's server connections: reused
// across requests and clients, a request that finds its pooled connection
// closed by the server is sent again on a new one, and informational
// responses are skipped.
func TestDirectPath(t *testing.T) {
	cases := []struct {
		name         string
		answer       func(n int) string
		requests     int
		wantAccepted int64
		wantBody     string
	}{
		{"keep-alive reused", func(int) string { return okAnswer }, 6, 1, "ok"},
		{"server closes idle connections", func(n int) string {
			if n > 1 {
				return "" // closed while idle in the pool, without saying so
			}
			return okAnswer
		}, 4, 4, "ok"},
		{"1xx skipped", func(int) string {
			return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + okAnswer
		}, 3, 1, "ok"},
		{"server says close", func(int) string {
			return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
		}, 3, 3, "ok"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, tc.answer)
			var flows atomic.Int64
			e := startEnv(t, &Proxy{AllowPrivateTargets: true, Record: func(f flow.Flow) {
				if f.Status == 200 && f.Error == "" {
					flows.Add(1)
				}
			}})
			for i := range tc.requests {
				// Half the requests on fresh client connections: the
				// pool is the proxy's, not the client connection's.
				tr := &http.Transport{Proxy: http.ProxyURL(e.url), DisableKeepAlives: i%2 == 1}
				c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
				resp, err := c.Get(s.url())
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				tr.CloseIdleConnections()
				if resp.StatusCode != 200 || string(b) != tc.wantBody {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
				}
				time.Sleep(5 * time.Millisecond) // let the server's close arrive
			}
			e.stop()
			if got := s.accepted.Load(); got != tc.wantAccepted {
				t.Errorf("server accepted %d connections, want %d", got, tc.wantAccepted)
			}
			if got := flows.Load(); got != int64(tc.requests) {
				t.Errorf("%d flows of successful exchanges, want %d", got, tc.requests)
			}
		})
	}
}

// TestDirectNotReplayed checks that a POST without a body is not sent
// twice when its pooled connection fails (the client gets a 502), and
// that it does not go on a connection idle for longer than upFreshFor.
func TestDirectNotReplayed(t *testing.T) {
	s := newRawServer(t, func(n int) string {
		if n > 1 {
			return ""
		}
		return okAnswer
	})
	e := startEnv(t, &Proxy{AllowPrivateTargets: true})
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(e.url)}, Timeout: 5 * time.Second}
	for i, want := range []int{200, 502, 200, 200} {
		if i == 3 {
			time.Sleep(upFreshFor + 100*time.Millisecond)
		}
		resp, err := c.Post(s.url(), "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	// 1: requests 0 and 1 (not replayed); 2: request 2; 3: request 3, as
	// request 2's connection had been idle too long to trust.
	if got := s.accepted.Load(); got != 3 {
		t.Errorf("server accepted %d connections, want 3", got)
	}
}

// TestDirectShutdownHangingServer checks that Shutdown's deadline ends an
// exchange whose server never answers.
func TestDirectShutdownHangingServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		close(got)
		_, _ = io.Copy(io.Discard, c) // never answers
	}()
	e := startEnv(t, &Proxy{AllowPrivateTargets: true})
	done := make(chan error, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(e.url)}}
		resp, err := c.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not reach the server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
			t.Logf("client: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the client's request did not end")
	}
}

// TestUpPool checks the pool's limits and expiry: LIFO reuse, expired
// connections closed on get and by the sweep, nothing kept once stopped.
func TestUpPool(t *testing.T) {
	var closed atomic.Int64
	newUC := func() *upConn {
		a, b := net.Pipe()
		b.Close()
		return &upConn{nc: closeCounter{a, &closed}}
	}
	u := &upPool{idleTimeout: 100 * time.Millisecond}
	first, second := newUC(), newUC()
	u.put("a:80", first)
	u.put("a:80", second)
	if got := u.get("a:80"); got != second {
		t.Errorf("get: not the most recently idle connection")
	}
	if got := u.get("b:80"); got != nil {
		t.Errorf("get of another key: %v", got)
	}
	u.put("a:80", second)
	// Both expire; the sweep closes them without any further get or put.
	deadline := time.Now().Add(5 * time.Second)
	for closed.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	u.mu.Lock()
	keys := len(u.idle)
	u.mu.Unlock()
	if n := u.idleCount(); closed.Load() != 2 || n != 0 || keys != 0 {
		t.Errorf("after expiry: %d closed, %d idle in %d keys; want 2, 0, 0", closed.Load(), u.idleCount(), keys)
	}
	for range upIdlePerHost + 1 {
		u.put("c:80", newUC())
	}
	if n := u.idleCount(); n != upIdlePerHost || closed.Load() != 3 {
		t.Errorf("per-host limit: %d idle, %d closed; want %d, 3", n, closed.Load(), upIdlePerHost)
	}
	u.closeIdle(true)
	u.put("c:80", newUC())
	if n := u.idleCount(); n != 0 || u.get("c:80") != nil || closed.Load() != int64(upIdlePerHost+4) {
		t.Errorf("after closeIdle: %d idle, %d closed", n, closed.Load())
	}
}

type closeCounter struct {
	net.Conn
	n *atomic.Int64
}

func (c closeCounter) Close() error {
	c.n.Add(1)
	return c.Conn.Close()
}

func (u *upPool) idleCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

// TestPlainPaths runs one table of bodiless plain-HTTP exchanges on one
// keep-alive connection through each of the two forwarding paths (the
// direct pool and net/http's Transport): each answer and each flow,
// exact byte counts included, must be the same on both.
func TestPlainPaths(t *testing.T) {
	cases := []struct {
		method, path string
		status, body int
	}{
		{"GET", "/bytes?n=1234", 200, 1234},
		{"GET", "/chunked?n=5000", 200, 5000},
		{"HEAD", "/bytes?n=777", 200, 0},
		{"GET", "/status?code=204", 204, 0},
		{"GET", "/status?code=404", 404, 0},
		{"DELETE", "/status?code=202", 202, 0},
		{"GET", "/bytes?n=100000", 200, 100000},
	}
	type answer struct {
		status, body, raw int    // status, body length, bytes on the wire
		flow              string // the flow's fields that must agree
	}
	answers := map[string][]answer{}
	for _, path := range []string{"direct", "transport"} {
		t.Run(path, func(t *testing.T) {
			e := newEnv(t, func(p *Proxy) { p.transportOnly = path == "transport" })
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			var reqs []string
			for i, tc := range cases {
				req := tc.method + " http://" + plainHost + tc.path + " HTTP/1.1\r\nHost: " + plainHost + "\r\n"
				if i == len(cases)-1 {
					req += "Connection: close\r\n"
				}
				req += "\r\n"
				reqs = append(reqs, req)
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				var raw strings.Builder
				resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(br, &raw)), &http.Request{Method: tc.method})
				if err != nil {
					t.Fatalf("%s %s: %v", tc.method, tc.path, err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s %s: body: %v", tc.method, tc.path, err)
				}
				if resp.StatusCode != tc.status || int(n) != tc.body {
					t.Errorf("%s %s: status %d, %d bytes; want %d, %d bytes", tc.method, tc.path, resp.StatusCode, n, tc.status, tc.body)
				}
				answers[path] = append(answers[path], answer{status: resp.StatusCode, body: int(n), raw: raw.Len()})
			}
			// The direct path keeps its server connection in its pool;
			// the Transport keeps its own. The connection goes back
			// before the exchange's flow is recorded, which may be after
			// the client has read the answer.
			for i := 0; e.p.Stats().Flows < int64(len(cases)) && i < 500; i++ {
				time.Sleep(10 * time.Millisecond)
			}
			if idle, want := e.p.pool.idleCount(), map[string]int{"direct": 1, "transport": 0}[path]; idle != want {
				t.Errorf("%d idle connections in the direct pool, want %d: not the %s path", idle, want, path)
			}
			flows := e.flows()
			if len(flows) != len(cases) {
				t.Fatalf("%d flows, want %d", len(flows), len(cases))
			}
			for i, f := range flows {
				a := &answers[path][i]
				if f.BytesUp != int64(len(reqs[i])) || f.BytesDown != int64(a.raw) {
					t.Errorf("flow %d: up %d down %d, want up %d down %d", i, f.BytesUp, f.BytesDown, len(reqs[i]), a.raw)
				}
				a.flow = fmt.Sprintf("%s %s %d %s %s %q %q", f.Method, f.URL, f.Status, f.Kind, f.Decision, f.Error, f.Reason)
				if strings.HasPrefix(cases[i].path, "/chunked") {
					// The proxy frames a chunk per read from the
					// server: the size on the wire depends on timing.
					a.raw = 0
				}
			}
		})
	}
	if d, tr := answers["direct"], answers["transport"]; !slices.Equal(d, tr) {
		t.Errorf("the paths differ:\ndirect    %v\ntransport %v", d, tr)
	}
}

package intercept

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// upstream serves what the HTTP/1.1 tests ask of a server:
//
//	/echo        what it was sent: protocol, framing, body, hop headers
//	/chunked     "ab" then "cd", flushed apart, with a trailer
//	/close       "bye", asking to close the connection
//	/status?c=C  status C, no body
//	/len         "hello" with a Content-Length (a HEAD gets the length only)
//	/bytes?n=N   N bytes of counting(0, N), with a Content-Length, or chunked in
//	             flushed 64 KiB pieces with &chunked=1
func upstream() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		chunked := r.URL.Query().Get("chunked") == "1"
		if !chunked {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		for off := 0; off < n; off += 64 << 10 {
			if _, err := w.Write(counting(off, min(64<<10, n-off))); err != nil {
				return
			}
			if chunked {
				w.(http.Flusher).Flush()
			}
		}
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %s te=%v cl=%d body=%q hop=%q expect=%q", r.Method, r.Proto, r.TransferEncoding, r.ContentLength, body,
			r.Header.Get("X-Hop")+r.Header.Get("Keep-Alive")+r.Header.Get("Connection"), r.Header.Get("Expect"))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Hop", "dropped")
		w.Header().Set("Connection", "X-Hop")
		io.WriteString(w, "ab")
		w.(http.Flusher).Flush()
		io.WriteString(w, "cd")
		w.Header().Set("X-Sum", "4")
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		c, _ := strconv.Atoi(r.URL.Query().Get("c"))
		w.WriteHeader(c)
	})
	mux.HandleFunc("/len", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		if r.Method != http.MethodHead {
			io.WriteString(w, "hello")
		}
	})
	return mux
}

// bothPaths runs test on the HTTP/1.1 path (http1.go) and on net/http's
// server and Transport, which serve HTTP/2 clients and served HTTP/1.1
// ones before: both must behave the same.
func bothPaths(t *testing.T, test func(t *testing.T)) {
	for _, direct := range []bool{true, false} {
		name := "direct"
		if !direct {
			name = "net-http"
		}
		t.Run(name, func(t *testing.T) {
			was := http1Path
			http1Path = direct
			defer func() { http1Path = was }()
			test(t)
		})
	}
}

// counting is the bytes at off of an endless text that says where it is.
func counting(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off + i) % 251)
	}
	return b
}

func h1Harness(t *testing.T, configure func(*httptest.Server)) *harness {
	return newHarness(t, upstream(), true, []string{"http/1.1"}, []string{"http/1.1"}, Options{}, configure)
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return string(b)
}

// Requests of every framing on one kept connection: each is forwarded
// over HTTP/1.1 as the client framed it, without the headers of one hop
// either way, and is a flow with its sizes.
func TestHTTP1Exchanges(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		hs := h1Harness(t, nil)
		type step struct {
			req, method, want string
			status            int
			check             func(*http.Response)
		}
		steps := []step{
			{req: "GET /echo?sig=s3cr3t HTTP/1.1\r\nHost: example.com\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 300\r\n\r\n",
				want: `GET HTTP/1.1 te=[] cl=0 body="" hop="" expect=""`, status: 200},
			{req: "POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
				want: `POST HTTP/1.1 te=[] cl=5 body="hello" hop="" expect=""`, status: 200},
			{req: "POST /echo HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
				want: `POST HTTP/1.1 te=[chunked] cl=-1 body="abcde" hop="" expect=""`, status: 200},
			{req: "GET /chunked HTTP/1.1\r\nHost: example.com\r\n\r\n", want: "abcd", status: 200, check: func(r *http.Response) {
				if r.Header.Get("X-Hop") != "" || r.Header.Get("Connection") != "" {
					t.Errorf("hop headers reached the client: %v", r.Header)
				}
				if len(r.TransferEncoding) != 1 || r.Trailer.Get("X-Sum") != "4" {
					t.Errorf("chunked answer: te %v trailer %v", r.TransferEncoding, r.Trailer)
				}
			}},
			{req: "HEAD /len HTTP/1.1\r\nHost: example.com\r\n\r\n", method: "HEAD", want: "", status: 200, check: func(r *http.Response) {
				if r.ContentLength != 5 {
					t.Errorf("HEAD: Content-Length %d, want 5", r.ContentLength)
				}
			}},
			{req: "GET /status?c=204 HTTP/1.1\r\nHost: example.com\r\n\r\n", want: "", status: 204},
			{req: "GET /status?c=304 HTTP/1.1\r\nHost: example.com\r\n\r\n", want: "", status: 304},
			{req: "GET /len HTTP/1.1\r\nHost: example.com\r\n\r\n", want: "hello", status: 200},
		}
		for _, s := range steps {
			hs.send(s.req)
			method := s.method
			if method == "" {
				method = "GET"
			}
			resp := hs.read(method)
			if got := body(t, resp); resp.StatusCode != s.status || got != s.want {
				t.Errorf("%q: %d %q, want %d %q", s.req, resp.StatusCode, got, s.status, s.want)
			}
			if s.check != nil {
				s.check(resp)
			}
			if resp.Close {
				t.Fatalf("%q: the proxy closed the connection", s.req)
			}
		}
		res := hs.end()
		flows := hs.recorded()
		if res.Protocol != "http/1.1" || res.Requests != int64(len(steps)) || len(flows) != len(steps) {
			t.Fatalf("result %+v, %d flows", res, len(flows))
		}
		f := flows[0]
		if f.Key != "t1-r1" || f.Tunnel != "t1" || f.URL != "https://example.com/echo?sig=REDACTED" || f.Status != 200 || f.ALPN != "http/1.1" ||
			f.Host != "example.com" || f.Method != "GET" || f.Error != "" || f.Note != "response text/plain" {
			t.Errorf("first flow: %+v", f)
		}
		if !strings.Contains(f.Headers, "> X-Hop: 1\n") || strings.Contains(f.Headers, "s3cr3t") {
			t.Errorf("first flow's headers (the client's as sent):\n%s", f.Headers)
		}
		if f := flows[1]; f.BytesUp != 5 || f.Note != "response text/plain; request text/plain" {
			t.Errorf("POST flow: up %d note %q", f.BytesUp, f.Note)
		}
		if f := flows[2]; f.BytesUp != 5 || f.Method != "POST" {
			t.Errorf("chunked POST flow: up %d", f.BytesUp)
		}
		if f := flows[3]; f.BytesDown != 4 || strings.Contains(f.Headers, "X-Hop") {
			t.Errorf("chunked answer's flow: down %d headers\n%s", f.BytesDown, f.Headers)
		}
		if f := flows[4]; f.BytesDown != 0 || f.Method != "HEAD" {
			t.Errorf("HEAD flow: %+v", f)
		}
	})
}

// A client that expects 100-continue is told to go on, and its body
// follows; the server sees the Expect header the client sent.
func TestHTTP1ExpectContinue(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		hs := h1Harness(t, nil)
		hs.send("POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
		if resp := hs.read("POST"); resp.StatusCode != http.StatusContinue {
			t.Fatalf("first answer %d, want 100", resp.StatusCode)
		}
		hs.send("abc")
		resp := hs.read("POST")
		if got := body(t, resp); resp.StatusCode != 200 || got != `POST HTTP/1.1 te=[] cl=3 body="abc" hop="" expect="100-continue"` {
			t.Errorf("answer %d %q", resp.StatusCode, got)
		}
		hs.end()
	})
}

// The server's connection is kept while it lets it be; one it closes,
// asking or not, is opened again for the next request.
func TestHTTP1ServerCloses(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		var conns atomic.Int32
		hs := h1Harness(t, func(s *httptest.Server) {
			s.Config.IdleTimeout = 100 * time.Millisecond
			s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
		})
		for i, req := range []string{"/len", "/len", "/close", "/len", "sleep", "/len", "sleep long", "POST"} {
			switch req {
			case "sleep":
				time.Sleep(300 * time.Millisecond) // the server closes the idle connection
				continue
			case "sleep long":
				time.Sleep(freshFor + 200*time.Millisecond)
				continue
			case "POST":
				// It cannot be sent twice, so it does not go on a
				// connection idle for longer than freshFor.
				hs.send("POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1\r\n\r\nx")
			default:
				hs.send("GET " + req + " HTTP/1.1\r\nHost: example.com\r\n\r\n")
			}
			resp := hs.read("GET")
			if b := body(t, resp); resp.StatusCode != 200 || resp.Close {
				t.Fatalf("request %d (%s): %d %q close=%v", i, req, resp.StatusCode, b, resp.Close)
			}
		}
		hs.end()
		hs.srv.Close()
		// the first (dialled before the client's handshake), after /close,
		// after each idle timeout
		if conns.Load() != 4 {
			t.Errorf("%d server connections, want 4", conns.Load())
		}
		for _, f := range hs.recorded() {
			if f.Status != 200 || f.Error != "" {
				t.Errorf("flow %+v", f)
			}
		}
	})
}

// A client that asks to close, or speaks HTTP/1.0, is answered and the
// connection closed; a body of unknown length goes to an HTTP/1.0 client
// until the close.
func TestHTTP1Close(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		for _, tc := range []struct{ req, want string }{
			{"GET /len HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n", "hello"},
			{"GET /chunked HTTP/1.0\r\nHost: example.com\r\n\r\n", "abcd"},
			{"GET /len HTTP/1.0\r\n\r\n", "hello"}, // no Host: the connection's
		} {
			hs := h1Harness(t, nil)
			hs.send(tc.req)
			resp := hs.read("GET")
			if got := body(t, resp); resp.StatusCode != 200 || got != tc.want || !resp.Close {
				t.Errorf("%q: %d %q close=%v", tc.req, resp.StatusCode, got, resp.Close)
			}
			select {
			case res := <-hs.done:
				if res.Requests != 1 {
					t.Errorf("%q: %d requests", tc.req, res.Requests)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%q: the connection stayed open", tc.req)
			}
			if f := hs.recorded(); len(f) != 1 || !strings.HasPrefix(f[0].URL, "https://example.com") {
				t.Errorf("%q: flows %+v", tc.req, f)
			}
		}
	})
}

// Requests sent back to back without waiting are answered in order.
func TestHTTP1Pipelined(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		hs := h1Harness(t, nil)
		hs.send("GET /len HTTP/1.1\r\nHost: example.com\r\n\r\nPOST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nhiGET /status?c=404 HTTP/1.1\r\nHost: example.com\r\n\r\n")
		for _, want := range []string{"200 hello", `200 POST HTTP/1.1 te=[] cl=2 body="hi" hop="" expect=""`, "404 "} {
			resp := hs.read("GET")
			if got := strconv.Itoa(resp.StatusCode) + " " + body(t, resp); got != want {
				t.Errorf("answer %q, want %q", got, want)
			}
		}
		if res := hs.end(); res.Requests != 3 {
			t.Errorf("%d requests", res.Requests)
		}
	})
}

// Heads that cannot be served are answered as net/http's server answers
// them, and the connection closed; nothing is recorded.
func TestHTTP1BadRequests(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		for _, tc := range []struct{ req, status string }{
			{"GET / HTTP/1.1\r\n\r\n", "400 Bad Request: missing required Host header"},
			{"NOT HTTP\r\n\r\n", "400 Bad Request"},
			{"GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: " + strings.Repeat("x", http.DefaultMaxHeaderBytes+8192) + "\r\n\r\n", "431 Request Header Fields Too Large"},
			{"GET / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: gzip\r\n\r\n", "501 Not Implemented"},
		} {
			hs := h1Harness(t, nil)
			go hs.client.Write([]byte(tc.req)) // a big head may not all be read
			resp := hs.read("GET")
			if got := resp.Status; got != tc.status || !resp.Close {
				t.Errorf("%.40q: %q close=%v, want %q", tc.req, got, resp.Close, tc.status)
			}
			select {
			case res := <-hs.done:
				if res.Requests != 0 || len(hs.recorded()) != 0 {
					t.Errorf("%.40q: %d requests, flows %+v", tc.req, res.Requests, hs.recorded())
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%.40q: the connection stayed open", tc.req)
			}
		}
	})
}

// A server that cannot be reached any more is a 502 with the reason, and
// a flow that says so.
func TestHTTP1ServerGone(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		hs := h1Harness(t, nil)
		hs.send("GET /len HTTP/1.1\r\nHost: example.com\r\n\r\n")
		body(t, hs.read("GET"))
		hs.srv.CloseClientConnections()
		hs.srv.Listener.Close()
		hs.send("GET /len HTTP/1.1\r\nHost: example.com\r\n\r\n")
		resp := hs.read("GET")
		if got := body(t, resp); resp.StatusCode != 502 || !strings.HasPrefix(got, "pilotwire: 502 Bad Gateway: forwarding to example.com: ") {
			t.Errorf("answer %d %q", resp.StatusCode, got)
		}
		hs.end()
		if f := hs.recorded(); len(f) != 2 || f[1].Status != 502 || !strings.HasPrefix(f[1].Error, "forwarding to example.com: ") {
			t.Errorf("flows %+v", f)
		}
	})
}

// Shutting down (ctx cancelled) ends a connection waiting for its next
// request at once.
func TestHTTP1Shutdown(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		hs := h1Harness(t, nil)
		hs.send("GET /len HTTP/1.1\r\nHost: example.com\r\n\r\n")
		body(t, hs.read("GET"))
		hs.cancel()
		select {
		case res := <-hs.done:
			if res.Requests != 1 {
				t.Errorf("%d requests", res.Requests)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return within 5 s of the shutdown")
		}
	})
}

// Big bodies arrive whole and in order, with a length or chunked; a
// client that leaves in the middle of one ends the connection, and the
// flow says why.
func TestHTTP1BigBodies(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		hs := h1Harness(t, nil)
		const mib = 1 << 20
		const n = 3*mib + 12345
		for _, q := range []string{"", "&chunked=1"} {
			hs.send("GET /bytes?n=" + strconv.Itoa(n) + q + " HTTP/1.1\r\nHost: example.com\r\n\r\n")
			resp := hs.read("GET")
			got := body(t, resp)
			if resp.StatusCode != 200 || got != string(counting(0, n)) || (q != "") != (resp.ContentLength < 0) {
				t.Fatalf("%q: %d, %d bytes (length %d), the same: %v", q, resp.StatusCode, len(got), resp.ContentLength, got == string(counting(0, n)))
			}
		}
		hs.send("GET /bytes?n=" + strconv.Itoa(64*mib) + " HTTP/1.1\r\nHost: example.com\r\n\r\n")
		resp := hs.read("GET")
		if _, err := io.ReadFull(resp.Body, make([]byte, 2*mib)); err != nil {
			t.Fatal(err)
		}
		hs.end() // the client leaves in the middle
		flows := hs.recorded()
		if len(flows) != 3 || flows[0].BytesDown != n || flows[1].BytesDown != n || flows[2].Error == "" || flows[2].BytesDown >= 64*mib {
			for _, f := range flows {
				t.Errorf("flow: down %d error %q", f.BytesDown, f.Error)
			}
		}
	})
}

// A client that leaves while its request is with the server (a long
// poll) ends the request at once: the server's side sees it cancelled
// and the flow says the client went away, on either way of serving.
func TestHTTP1ClientLeavesDuringPoll(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		cancelled := make(chan struct{}, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
				cancelled <- struct{}{}
			case <-time.After(20 * time.Second):
				io.WriteString(w, "late")
			}
		})
		hs := newHarness(t, h, false, []string{"http/1.1"}, []string{"http/1.1"}, Options{}, nil)
		hs.send("GET /poll HTTP/1.1\r\nHost: example.com\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // the request reaches the server
		res := hs.end()
		select {
		case <-cancelled:
		case <-time.After(5 * time.Second):
			t.Fatal("the server's request was not cancelled within 5 s of the client leaving")
		}
		flows := hs.recorded()
		if res.Requests != 1 || len(flows) != 1 || flows[0].Error != "client went away before the answer" {
			t.Fatalf("result %+v, flows %+v", res, flows)
		}
	})
}

package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// exchange writes data to the proxy on a new connection and reads every
// response until the proxy closes the connection (or 2 s pass). It returns
// their status codes and whether the proxy closed.
func (e *env) exchange(data string) (statuses []int, closed bool) {
	e.t.Helper()
	c := e.send(data)
	defer c.Close()
	br := bufio.NewReader(c)
	for range 10 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return statuses, err == io.EOF || err == io.ErrUnexpectedEOF
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	return statuses, false
}

// TestSmuggling sends requests whose length is ambiguous or whose head is
// malformed, each followed by a second request, on one connection: the
// server must never see that second request, and after a request with
// both Content-Length and Transfer-Encoding the proxy answers it (as
// chunked, RFC 9112 section 6.1) and closes the connection.
func TestSmuggling(t *testing.T) {
	var seen atomic.Int64
	srv := newRawServer(t, func(int) string { seen.Add(1); return okAnswer })
	e := newEnv(t, func(p *Proxy) { p.AllowPrivateTargets = true })
	target := strings.TrimSuffix(srv.url(), "/")
	host := strings.TrimPrefix(target, "http://")
	second := "GET " + target + "/smuggled HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	cases := []struct {
		name, head, body string
		statuses         []int // what the client gets
		served           int64 // requests the server sees
	}{
		{"CL+TE", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", []int{200}, 1},
		{"TE+CL", "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n", "0\r\n\r\n", []int{200}, 1},
		{"CL+TE, TE in capitals", "Content-Length: 4\r\nTRANSFER-ENCODING: Chunked\r\n", "0\r\n\r\n", []int{200}, 1},
		{"duplicate Content-Length", "Content-Length: 4\r\nContent-Length: 5\r\n", "abcde", []int{400}, 0},
		{"listed Content-Length", "Content-Length: 5, 5\r\n", "abcde", []int{400}, 0},
		{"negative Content-Length", "Content-Length: -5\r\n", "", []int{400}, 0},
		{"obfuscated TE", "Transfer-Encoding: xchunked\r\n", "0\r\n\r\n", []int{400}, 0},
		{"two TEs", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n", []int{400}, 0},
		{"TE list", "Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n", []int{400}, 0},
		{"space before colon", "Transfer-Encoding : chunked\r\n", "0\r\n\r\n", []int{400}, 0},
		{"bare CR", "X-A: 1\rTransfer-Encoding: chunked\r\n", "0\r\n\r\n", []int{400}, 0},
		{"NUL", "X-A: 1\x00\r\n", "", []int{400}, 0},
	}
	for _, tc := range cases {
		seen.Store(0)
		req := "POST " + target + "/first HTTP/1.1\r\nHost: " + host + "\r\n" + tc.head + "\r\n" + tc.body + second
		statuses, closed := e.exchange(req)
		if !closed || len(statuses) != len(tc.statuses) || len(statuses) > 0 && statuses[0] != tc.statuses[0] {
			t.Errorf("%s: answers %v, closed %v; want %v then close", tc.name, statuses, closed, tc.statuses)
		}
		if n := seen.Load(); n != tc.served {
			t.Errorf("%s: the server saw %d requests, want %d", tc.name, n, tc.served)
		}
	}
	// Each case is one flow: the smuggled request was never read.
	if flows := e.flows(); len(flows) != len(cases) {
		t.Errorf("%d flows for %d cases", len(flows), len(cases))
	} else {
		for i, f := range flows {
			if wantDenied := cases[i].served == 0; (f.Decision == flow.DecisionDenied) != wantDenied {
				t.Errorf("%s: flow %+v", cases[i].name, f)
			}
		}
	}
}

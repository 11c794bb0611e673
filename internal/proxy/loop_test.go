package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// flowLog collects what a Proxy records, the last record of each Key.
type flowLog struct {
	mu    sync.Mutex
	keys  []string
	byKey map[string]flow.Flow
}

func (l *flowLog) record(f flow.Flow) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byKey == nil {
		l.byKey = make(map[string]flow.Flow)
	}
	if _, ok := l.byKey[f.Key]; !ok {
		l.keys = append(l.keys, f.Key)
	}
	l.byKey[f.Key] = f
}

func (l *flowLog) flows() []flow.Flow {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]flow.Flow, 0, len(l.keys))
	for _, k := range l.keys {
		out = append(out, l.byKey[k])
	}
	return out
}

// loopProxy is a proxy on a loopback port, not serving yet, with a
// connection limit that bounds a loop should the guards fail.
func loopProxy(t *testing.T) (*Proxy, net.Listener, *flowLog) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := new(flowLog)
	return &Proxy{MaxConns: 40, Record: log.record, DialTimeout: 2 * time.Second}, ln, log
}

// serveLoop serves p on ln until the test ends.
func serveLoop(t *testing.T, p *Proxy, ln net.Listener) *env {
	t.Helper()
	e := &env{t: t, p: p, addr: ln.Addr().String(), done: make(chan struct{})}
	e.url = &url.URL{Scheme: "http", Host: e.addr}
	go func() {
		defer close(e.done)
		_ = p.Serve(ln)
	}()
	t.Cleanup(e.stop)
	return e
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// loopRequests sends one GET and one CONNECT through e and checks both are
// refused: the GET with the 508 of the proxy that saw itself in Via, the
// CONNECT with a 502 that says what the upstream answered.
func loopRequests(t *testing.T, e *env) {
	t.Helper()
	out := e.rawRequest("GET http://" + plainHost + "/x HTTP/1.1\r\nHost: " + plainHost + "\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 508 Loop Detected\r\n") || !strings.HasSuffix(out, "pilotwire: 508 Loop Detected: forwarding loop\n") {
		t.Errorf("GET in a loop: %q", out)
	}
	out = e.rawRequest("CONNECT " + ztdHost + ":443 HTTP/1.1\r\nHost: " + ztdHost + ":443\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 502 ") || !strings.Contains(out, "upstream proxy") {
		t.Errorf("CONNECT in a loop: %q", out)
	}
}

// loopRefusals counts the flows refused as a loop, and checks each is a
// denied 508.
func loopRefusals(t *testing.T, flows []flow.Flow) int {
	t.Helper()
	n := 0
	for _, f := range flows {
		if f.Reason == "forwarding loop" {
			n++
			if f.Status != http.StatusLoopDetected || f.Decision != flow.DecisionDenied {
				t.Errorf("loop refusal: %+v", f)
			}
		}
	}
	return n
}

// TestUpstreamIsSelf: a proxy whose upstream is its own listener (what
// CheckUpstream refuses at start; here it is bypassed) refuses the request
// it sends itself, once: one request, a handful of flows.
func TestUpstreamIsSelf(t *testing.T) {
	p, ln, log := loopProxy(t)
	p.Upstream = &url.URL{Scheme: "http", Host: ln.Addr().String()}
	e := serveLoop(t, p, ln)
	before := openFDs(t)
	loopRequests(t, e)
	if n := openFDs(t); n > before+10 {
		t.Errorf("%d open files after the loop, %d before", n, before)
	}
	e.stop()
	flows := log.flows()
	if n := loopRefusals(t, flows); n != 2 || len(flows) != 4 {
		t.Errorf("%d loop refusals in %d flows, want 2 in 4: %+v", n, len(flows), flows)
	}
}

// TestChainedLoop: two proxies, each the other's upstream. A request goes
// A → B → A, where A sees itself in Via: one refusal per request.
func TestChainedLoop(t *testing.T) {
	a, lnA, logA := loopProxy(t)
	b, lnB, logB := loopProxy(t)
	a.Upstream = &url.URL{Scheme: "http", Host: lnB.Addr().String()}
	b.Upstream = &url.URL{Scheme: "http", Host: lnA.Addr().String()}
	ea := serveLoop(t, a, lnA)
	eb := serveLoop(t, b, lnB)
	before := openFDs(t)
	loopRequests(t, ea)
	if n := openFDs(t); n > before+10 {
		t.Errorf("%d open files after the loop, %d before", n, before)
	}
	ea.stop()
	eb.stop()
	fa, fb := logA.flows(), logB.flows()
	if n := loopRefusals(t, fa) + loopRefusals(t, fb); n != 2 || len(fa)+len(fb) != 6 {
		t.Errorf("%d loop refusals in %d flows, want 2 in 6:\nA %+v\nB %+v", n, len(fa)+len(fb), fa, fb)
	}
}

// TestVia: a forwarded request carries "1.1 pilotwire-ID" (or 1.0 for an
// HTTP/1.0 client) after the Via values it came with.
func TestVia(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s", strings.Join(r.Header.Values("Via"), " | "))
	}))
	t.Cleanup(origin.Close)
	e := newEnv(t, func(p *Proxy) { p.AllowPrivateTargets = true })
	host := strings.TrimPrefix(origin.URL, "http://")
	cases := []struct{ request, want string }{
		{"GET " + origin.URL + "/ HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n", `^1\.1 pilotwire-[0-9a-f]{8}$`},
		{"GET " + origin.URL + "/ HTTP/1.0\r\nHost: " + host + "\r\n\r\n", `^1\.0 pilotwire-[0-9a-f]{8}$`},
		{"GET " + origin.URL + "/ HTTP/1.1\r\nHost: " + host + "\r\nVia: 1.1 corp-proxy\r\nConnection: close\r\n\r\n", `^1\.1 corp-proxy \| 1\.1 pilotwire-[0-9a-f]{8}$`},
	}
	for _, tc := range cases {
		out := e.rawRequest(tc.request)
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if !regexp.MustCompile(tc.want).Match(body) {
			t.Errorf("origin saw Via %q, want %s", body, tc.want)
		}
	}
}

// TestConnectToSelf: CONNECT to the proxy's own port under any address
// that reaches it is refused as a loop, even with private targets allowed.
func TestConnectToSelf(t *testing.T) {
	var port int
	e := newEnv(t, func(p *Proxy) {
		p.AllowPrivateTargets = true
		p.Dial = nil // real sockets: 0.0.0.0 reaches the proxy itself
	})
	_, ps, _ := net.SplitHostPort(e.addr)
	fmt.Sscan(ps, &port)
	e.p.ConnectPorts = []int{443, port}
	targets := []string{"0.0.0.0:" + ps, "[::]:" + ps, "127.0.0.1:" + ps}
	for _, target := range targets {
		out := e.rawRequest("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 403 ") || !strings.Contains(out, "is this proxy (a loop)") {
			t.Errorf("CONNECT %s: %q", target, out)
		}
	}
	flows := e.flows()
	if len(flows) != len(targets) {
		t.Fatalf("%d flows: %+v", len(flows), flows)
	}
	for i, target := range targets {
		if f := flows[i]; f.Decision != flow.DecisionDenied || f.Reason != "target "+target+" is this proxy (a loop)" {
			t.Errorf("CONNECT %s: flow %+v", target, f)
		}
	}
}

func TestCheckUpstream(t *testing.T) {
	cases := []struct {
		listen, upstream string
		self             bool
	}{
		{"127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"127.0.0.1:8080", "http://localhost:8080", true},
		{"127.0.0.1:8080", "http://0.0.0.0:8080", true},
		{"127.0.0.1:8080", "http://[::]:8080", true},
		{"127.0.0.1:8080", "http://127.0.0.1", true}, // the default port
		{"127.0.0.1:8080", "http://user:pw@127.0.0.1:8080/", true},
		{"0.0.0.0:3128", "http://127.0.0.1:3128", true},
		{"0.0.0.0:3128", "http://localhost:3128", true},
		{"[::]:3128", "http://127.0.0.1:3128", true},
		{"[::]:3128", "http://[::1]:3128", true},
		{"127.0.0.1:8080", "http://127.0.0.1:3128", false},
		{"127.0.0.1:8080", "http://192.0.2.10:8080", false},
		{"127.0.0.1:8080", "http://no-such-name.invalid:8080", false}, // fails when used, not here
	}
	for _, tc := range cases {
		u, err := url.Parse(tc.upstream)
		if err != nil {
			t.Fatal(err)
		}
		lap, err := net.ResolveTCPAddr("tcp", tc.listen)
		if err != nil {
			t.Fatal(err)
		}
		p := &Proxy{Upstream: u}
		err = p.CheckUpstream(context.Background(), lap)
		if got := err != nil; got != tc.self {
			t.Errorf("listen %s, upstream %s: %v, want self=%v", tc.listen, tc.upstream, err, tc.self)
		}
		if err != nil && !strings.Contains(err.Error(), "is this proxy's own listener") {
			t.Errorf("message: %v", err)
		}
	}
}

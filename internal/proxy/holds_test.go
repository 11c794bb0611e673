package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Tests of what issue 19 found to hold under attack, kept so that it keeps
// holding.

// TestSlowloris: 1,000 sockets that send a request head a byte at a time,
// or nothing at all, hold nobody up: a normal client meanwhile gets its
// answers at once, and each slow socket is answered 408 and closed when
// the header timeout passes, its refusal recorded.
func TestSlowloris(t *testing.T) {
	const slow = 1000
	needFiles(t, 2*slow+512) // a client and a server socket each, and the rest
	const headerTimeout = 2 * time.Second
	e := newEnv(t, func(p *Proxy) { p.HeaderTimeout = headerTimeout })

	conns := make([]net.Conn, 0, slow)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	var trickling []net.Conn
	for i := range slow {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatalf("slow socket %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			if _, err := io.WriteString(c, "GET http://"+plainHost+"/ HTTP/1.1\r\nHo"); err != nil {
				t.Fatal(err)
			}
			trickling = append(trickling, c)
		}
	}
	// Half the sockets go on sending a byte of a header every 100 ms; the
	// header deadline is not moved by it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 100 { // 10 s at most
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, c := range trickling {
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
				_, _ = c.Write([]byte("x"))
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	waitFor(t, "the proxy to hold the slow sockets", func() bool { return e.p.Stats().OpenConns >= slow })

	// A normal client, on new connections each time.
	tr := &http.Transport{Proxy: http.ProxyURL(e.url), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var worst time.Duration
	for i := range 5 {
		start := time.Now()
		resp, err := client.Get("http://" + plainHost + "/bytes?n=1000")
		if err != nil {
			t.Fatalf("normal request %d beside %d slow sockets: %v", i, slow, err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		worst = max(worst, d)
		if resp.StatusCode != 200 || n != 1000 {
			t.Errorf("normal request %d: %d, %d bytes", i, resp.StatusCode, n)
		}
		// Liveness, not speed: a generous bound.
		if d > 2*time.Second {
			t.Errorf("normal request %d took %v beside %d slow sockets", i, d, slow)
		}
	}
	// The slow sockets were all still held while it was served.
	if open := e.p.Stats().OpenConns; open < slow {
		t.Fatalf("only %d connections open after the normal requests: the header timeout passed before they ran", open)
	}
	t.Logf("normal request beside %d slow sockets: %v at worst", slow, worst)

	// Each slow socket gets a 408, then the proxy closes it.
	const wantBody = "pilotwire: 408 Request Timeout: request header not complete within 2s\n"
	deadline := time.Now().Add(headerTimeout + 5*time.Second)
	for i, c := range conns {
		_ = c.SetReadDeadline(deadline)
		got, err := io.ReadAll(c)
		if err != nil || !bytes.HasPrefix(got, []byte("HTTP/1.1 408 Request Timeout\r\n")) || !bytes.HasSuffix(got, []byte("\r\n\r\n"+wantBody)) {
			t.Fatalf("slow socket %d: %q, %v; want a 408 saying %q, then the end", i, got, err, wantBody)
		}
	}
	waitFor(t, "the slow sockets to be let go", func() bool { return e.p.Stats().OpenConns == 0 })

	var timedOut, served int
	for _, f := range e.flows() {
		switch {
		case f.Kind == flow.KindTCP && f.Status == 408 && f.Decision == flow.DecisionDenied &&
			f.Reason == "request header not complete within 2s":
			timedOut++
		case f.Kind == flow.KindHTTP && f.Status == 200 && f.Host == plainHost:
			served++
		default:
			t.Errorf("unexpected flow %+v", f)
		}
	}
	if timedOut != slow || served != 5 {
		t.Errorf("%d flows of timed-out heads, %d served; want %d and 5", timedOut, served, slow)
	}
}

// waitFor polls cond every 10 ms for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Tests of what was found to hold under attack (slow clients, connection
// limits, refused spellings), kept so that it keeps holding.

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

// worstResolver resolves names as badly as a system resolver may: the
// inet_aton spellings glibc's getaddrinfo accepts (127.1, 0x7f.1,
// 2130706433, 0177.0.0.1), localhost in any case and with a final dot as
// /etc/hosts has it (IPv4 as ::ffff:127.0.0.1, the way Go's resolver
// reports it), and metadata.google.internal as on Google Cloud; anything
// else from the stand-in internet. Whatever a name resolves to is what the
// target rules must judge.
func worstResolver(e *env) func(ctx context.Context, host string) ([]netip.Addr, error) {
	return func(ctx context.Context, host string) ([]netip.Addr, error) {
		if a, ok := inetAton(host); ok {
			return []netip.Addr{a}, nil
		}
		switch strings.TrimSuffix(strings.ToLower(host), ".") {
		case "localhost":
			return []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1"), netip.IPv6Loopback()}, nil
		case "metadata.google.internal":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		}
		return e.net.Resolve(ctx, host)
	}
}

// inetAton parses s as inet_aton does: one to four numbers separated by
// dots, each decimal, octal (leading 0) or hex (0x), the last filling the
// bytes left.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, p = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		last := i == len(parts)-1
		bits := 8
		if last {
			bits = 8 * (4 - i)
		}
		v, err := strconv.ParseUint(p, base, bits)
		if err != nil || p == "" && base != 8 {
			return netip.Addr{}, false
		}
		if !last {
			b[i] = byte(v)
			continue
		}
		for j := 3; j >= i; j-- {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return netip.AddrFrom4(b), true
}

// TestRefusedSpellings: loopback, unspecified, link-local and cloud
// metadata targets are refused however they are spelt, as literals or as
// names a resolver turns into them, in plain requests, absolute https://
// requests and CONNECTs; nothing is dialled.
func TestRefusedSpellings(t *testing.T) {
	// A real server on loopback, which must not be reached.
	var hits atomic.Int64
	local := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go local.Serve(ln)
	t.Cleanup(func() { local.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	portN, _ := strconv.Atoi(port)
	var e *env
	e = newEnv(t, func(p *Proxy) {
		p.ConnectPorts = []int{443, portN}
		p.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) { return worstResolver(e)(ctx, host) }
	})

	const (
		loop   = "a loopback address"
		meta   = "a cloud metadata address"
		unspec = "an unspecified address"
		link   = "a link-local address"
	)
	cases := []struct{ spelling, addr, what string }{
		{"127.1", "127.0.0.1", loop},
		{"0x7f.1", "127.0.0.1", loop},
		{"0x7f000001", "127.0.0.1", loop},
		{"2130706433", "127.0.0.1", loop},
		{"017700000001", "127.0.0.1", loop},
		{"0177.0.0.1", "127.0.0.1", loop},
		{"127.000.000.001", "127.0.0.1", loop},
		{"127.0.0.1.", "127.0.0.1", loop},
		{"127.0.0.2", "127.0.0.2", loop},
		{"[::1]", "::1", loop},
		{"[0:0:0:0:0:0:0:1]", "::1", loop},
		{"[::ffff:127.0.0.1]", "127.0.0.1", loop},
		{"[::ffff:7f00:1]", "127.0.0.1", loop},
		{"localhost", "127.0.0.1", loop},
		{"LOCALHOST", "127.0.0.1", loop},
		{"localhost.", "127.0.0.1", loop},
		{"LocalHost.", "127.0.0.1", loop},
		{"169.254.169.254", "169.254.169.254", meta},
		{"2852039166", "169.254.169.254", meta},
		{"0xa9fea9fe", "169.254.169.254", meta},
		{"0xa9.0xfe.0xa9.0xfe", "169.254.169.254", meta},
		{"0251.0376.0251.0376", "169.254.169.254", meta},
		{"169.254.43518", "169.254.169.254", meta},
		{"[::ffff:169.254.169.254]", "169.254.169.254", meta},
		{"[::ffff:a9fe:a9fe]", "169.254.169.254", meta},
		{"[fd00:ec2::254]", "fd00:ec2::254", meta},
		{"metadata.google.internal", "169.254.169.254", meta},
		{"METADATA.GOOGLE.INTERNAL.", "169.254.169.254", meta},
		{"100.100.100.200", "100.100.100.200", meta},
		{"0", "0.0.0.0", unspec},
		{"0x0", "0.0.0.0", unspec},
		{"0.0.0.0", "0.0.0.0", unspec},
		{"[::]", "::", unspec},
		{"[::ffff:0.0.0.0]", "0.0.0.0", unspec}, // Linux connects it to 127.0.0.1
		{"169.254.1.1", "169.254.1.1", link},
		{"[fe80::1]", "fe80::1", link},
	}
	// reason is the refusal for a target spelt host: the rule, and the name
	// when it is not the address itself.
	reason := func(host, addr, what string) string {
		r := "target " + addr + " is " + what
		if host != addr {
			r += " (" + host + " resolves to it)"
		}
		return r
	}
	type sent struct{ req, reason string }
	var all []sent
	for _, tc := range cases {
		raw := strings.Trim(tc.spelling, "[]")
		// Plain requests and CONNECTs name the host in lower case without
		// the final dot; an absolute https:// request names it as sent.
		norm := strings.TrimSuffix(strings.ToLower(raw), ".")
		all = append(all,
			sent{"GET http://" + tc.spelling + ":" + port + "/ HTTP/1.1\r\nHost: x\r\n\r\n", reason(norm, tc.addr, tc.what)},
			sent{"GET https://" + tc.spelling + ":" + port + "/ HTTP/1.1\r\nHost: x\r\n\r\n", reason(raw, tc.addr, tc.what)},
			sent{"CONNECT " + tc.spelling + ":443 HTTP/1.1\r\nHost: x\r\n\r\n", reason(norm, tc.addr, tc.what)})
	}
	// The host is the URL's, whatever the user part or the Host header say.
	all = append(all,
		sent{"GET http://" + plainHost + "@127.1:" + port + "/ HTTP/1.1\r\nHost: " + plainHost + "\r\n\r\n", reason("127.1", "127.0.0.1", loop)},
		sent{"GET http://" + plainHost + ":80@[::1]:" + port + "/ HTTP/1.1\r\nHost: " + plainHost + "\r\n\r\n", reason("::1", "::1", loop)})

	for _, s := range all {
		want := "pilotwire: 403 Forbidden: " + s.reason + "\n"
		if out := e.rawRequest(s.req); !strings.HasPrefix(out, "HTTP/1.1 403 Forbidden\r\n") || !strings.HasSuffix(out, "\r\n\r\n"+want) {
			t.Errorf("%q: answer %q, want a 403 saying %q", s.req, out, want)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server was reached %d times", n)
	}
	if d := e.net.Dials(); d != 0 {
		t.Errorf("%d dials were made for refused targets", d)
	}
	flows := e.flows()
	if len(flows) != len(all) {
		t.Fatalf("%d flows for %d requests", len(flows), len(all))
	}
	for i, s := range all {
		if f := flows[i]; f.Decision != flow.DecisionDenied || f.Status != 403 || f.Reason != s.reason {
			t.Errorf("%q: flow %s %d %q, want denied 403 %q", s.req, f.Decision, f.Status, f.Reason, s.reason)
		}
	}
}

// TestAuthSpellings: with --auth, every malformed or wrong
// Proxy-Authorization is refused with 407 and recorded with the user name
// it carried (quoted); right credentials pass in any spelling RFC 7617
// allows.
func TestAuthSpellings(t *testing.T) {
	e := newEnv(t, func(p *Proxy) { p.AuthUser, p.AuthPass = "lab", "s3cret" })
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	const required, wrong = "proxy authentication required", "wrong proxy credentials (user %q)"
	cases := []struct {
		name, header string // header: the request's extra header lines
		status       int
		reason       string
	}{
		{"none", "", 407, required},
		{"in Authorization", "Authorization: Basic " + b64("lab:s3cret") + "\r\n", 407, required},
		{"empty", "Proxy-Authorization: \r\n", 407, required},
		{"scheme only", "Proxy-Authorization: Basic\r\n", 407, fmt.Sprintf(wrong, "")},
		{"scheme and space", "Proxy-Authorization: Basic \r\n", 407, fmt.Sprintf(wrong, "")},
		{"wrong scheme", "Proxy-Authorization: Bearer " + b64("lab:s3cret") + "\r\n", 407, fmt.Sprintf(wrong, "")},
		{"digest", "Proxy-Authorization: Digest username=\"lab\", response=\"x\"\r\n", 407, fmt.Sprintf(wrong, "")},
		{"bad base64", "Proxy-Authorization: Basic !!!!\r\n", 407, fmt.Sprintf(wrong, "")},
		{"unpadded base64", "Proxy-Authorization: Basic " + strings.TrimRight(b64("lab:s3cret"), "=") + "\r\n", 407, fmt.Sprintf(wrong, "")},
		{"no colon", "Proxy-Authorization: Basic " + b64("labs3cret") + "\r\n", 407, fmt.Sprintf(wrong, "")},
		{"empty user", "Proxy-Authorization: Basic " + b64(":s3cret") + "\r\n", 407, fmt.Sprintf(wrong, "")},
		{"wrong password", "Proxy-Authorization: Basic " + b64("lab:wrong") + "\r\n", 407, fmt.Sprintf(wrong, "lab")},
		{"password case", "Proxy-Authorization: Basic " + b64("lab:S3CRET") + "\r\n", 407, fmt.Sprintf(wrong, "lab")},
		{"user case", "Proxy-Authorization: Basic " + b64("LAB:s3cret") + "\r\n", 407, fmt.Sprintf(wrong, "LAB")},
		{"password prefix", "Proxy-Authorization: Basic " + b64("lab:s3cre") + "\r\n", 407, fmt.Sprintf(wrong, "lab")},
		{"password longer", "Proxy-Authorization: Basic " + b64("lab:s3cret:") + "\r\n", 407, fmt.Sprintf(wrong, "lab")},
		{"trailing space in password", "Proxy-Authorization: Basic " + b64("lab:s3cret ") + "\r\n", 407, fmt.Sprintf(wrong, "lab")},
		{"NUL in user", "Proxy-Authorization: Basic " + b64("lab\x00:s3cret") + "\r\n", 407, fmt.Sprintf(wrong, "lab\x00")},
		{"header injection in user", "Proxy-Authorization: Basic " + b64("lab\r\nX-Evil: 1:s3cret") + "\r\n", 407, fmt.Sprintf(wrong, "lab\r\nX-Evil")},
		{"first of two wrong", "Proxy-Authorization: Basic " + b64("lab:wrong") + "\r\nProxy-Authorization: Basic " + b64("lab:s3cret") + "\r\n", 407, fmt.Sprintf(wrong, "lab")},
		// Accepted spellings: the scheme in any case, spaces around the
		// credentials.
		{"right", "Proxy-Authorization: Basic " + b64("lab:s3cret") + "\r\n", 200, ""},
		{"scheme lower case", "Proxy-Authorization: basic " + b64("lab:s3cret") + "\r\n", 200, ""},
		{"extra spaces", "Proxy-Authorization: BASIC   " + b64("lab:s3cret") + "  \r\n", 200, ""},
	}
	for i, tc := range cases {
		if d := e.net.Dials(); tc.status == 200 && i > 0 && cases[i-1].status != 200 && d != 0 {
			t.Fatalf("%d dials for refused requests", d)
		}
		out := e.rawRequest("GET http://" + plainHost + "/bytes?n=2 HTTP/1.1\r\nHost: " + plainHost + "\r\n" + tc.header + "Connection: close\r\n\r\n")
		want := fmt.Sprintf("HTTP/1.1 %d ", tc.status)
		if !strings.HasPrefix(out, want) {
			t.Errorf("%s: answer %q, want %s", tc.name, out, want)
		}
		if tc.status == 407 && !strings.Contains(out, "\r\nProxy-Authenticate: Basic realm=\"pilotwire\"\r\n") {
			t.Errorf("%s: 407 without a Basic challenge: %q", tc.name, out)
		}
	}
	// A CONNECT is held to the same (refused cases come first in the
	// table; the accepted ones may share one server connection).
	if out := e.rawRequest("CONNECT " + ztdHost + ":443 HTTP/1.1\r\nProxy-Authorization: Basic " + b64("lab:wrong") + "\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 407 ") {
		t.Errorf("CONNECT with a wrong password: %q", out)
	}
	flows := e.flows()
	if len(flows) != len(cases)+1 {
		t.Fatalf("%d flows for %d requests", len(flows), len(cases)+1)
	}
	for i, tc := range cases {
		f := flows[i]
		wantDecision, wantDevice := flow.DecisionDenied, ""
		if tc.status == 200 {
			wantDecision, wantDevice = flow.DecisionAllowed, "lab"
		}
		if f.Status != tc.status || f.Reason != tc.reason || f.Decision != wantDecision || f.Device != wantDevice {
			t.Errorf("%s: flow %d %q %s device %q, want %d %q %s %q", tc.name, f.Status, f.Reason, f.Decision, f.Device, tc.status, tc.reason, wantDecision, wantDevice)
		}
	}
	if f := flows[len(cases)]; f.Kind != flow.KindConnect || f.Status != 407 || f.Reason != fmt.Sprintf(wrong, "lab") {
		t.Errorf("CONNECT flow: %+v", f)
	}
}

// TestClientSpellings: the client ACL judges the socket's address however
// it arrives (IPv4, IPv4-mapped on a dual-stack listener, IPv6), never a
// header that claims another; and an allowed address is allowed in every
// spelling.
func TestClientSpellings(t *testing.T) {
	serveDual := func(e *env) string {
		ln, err := net.Listen("tcp", "[::]:0") // dual-stack: IPv4 clients arrive as ::ffff:a.b.c.d
		if err != nil {
			t.Skipf("no dual-stack listener: %v", err)
		}
		go e.p.Serve(ln) // ends with the proxy's Shutdown
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		return port
	}
	ask := func(addr, req string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Skipf("dial %s: %v", addr, err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(c)
		return string(b)
	}
	get := "GET http://" + plainHost + "/bytes?n=2 HTTP/1.1\r\nHost: " + plainHost + "\r\nConnection: close\r\n"
	claims := "X-Forwarded-For: 10.0.0.5\r\nForwarded: for=10.0.0.5\r\nX-Real-IP: 10.0.0.5\r\nClient-IP: 10.0.0.5\r\n"

	refused := newEnv(t, func(p *Proxy) { p.AllowClients, _ = ParsePrefixes("10.0.0.0/8, fd00::/8") })
	port := serveDual(refused)
	cases := []struct{ name, addr, req, client string }{
		{"IPv4", refused.addr, get + "\r\n", "127.0.0.1"},
		{"IPv4 claiming an allowed address", refused.addr, get + claims + "\r\n", "127.0.0.1"},
		{"IPv4-mapped", "127.0.0.1:" + port, get + claims + "\r\n", "127.0.0.1"},
		{"IPv6", "[::1]:" + port, get + claims + "\r\n", "::1"},
		{"IPv6 CONNECT", "[::1]:" + port, "CONNECT " + ztdHost + ":443 HTTP/1.1\r\n" + claims + "\r\n", "::1"},
		{"IPv6 PAC", "[::1]:" + port, "GET /proxy.pac HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "::1"},
	}
	for _, tc := range cases {
		want := "pilotwire: 403 Forbidden: client " + tc.client + " is not in the allowed networks\n"
		if out := ask(tc.addr, tc.req); !strings.HasPrefix(out, "HTTP/1.1 403 Forbidden\r\n") || !strings.HasSuffix(out, want) {
			t.Errorf("%s: %q, want a 403 saying %q", tc.name, out, want)
		}
	}
	if d := refused.net.Dials(); d != 0 {
		t.Errorf("%d dials for refused clients", d)
	}
	if flows := refused.flows(); len(flows) != len(cases) {
		t.Errorf("%d flows for %d refused requests", len(flows), len(cases))
	} else {
		for i, f := range flows {
			if f.Decision != flow.DecisionDenied || f.Status != 403 || f.Client != cases[i].client {
				t.Errorf("%s: flow %+v", cases[i].name, f)
			}
		}
	}

	// Allowed as ::ffff:127.0.0.1 in --allow-clients, a client arriving
	// as IPv4 or IPv4-mapped is served; ::1 is another address.
	allowed := newEnv(t, func(p *Proxy) { p.AllowClients, _ = ParsePrefixes("::ffff:127.0.0.1") })
	port = serveDual(allowed)
	for _, addr := range []string{allowed.addr, "127.0.0.1:" + port} {
		if out := ask(addr, get+"\r\n"); !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") {
			t.Errorf("allowed client via %s: %q", addr, out)
		}
	}
	if out := ask("[::1]:"+port, get+"\r\n"); !strings.HasPrefix(out, "HTTP/1.1 403 Forbidden\r\n") {
		t.Errorf("::1 with only 127.0.0.1 allowed: %q", out)
	}
}

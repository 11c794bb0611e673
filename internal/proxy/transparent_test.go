package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// redirected returns the client end of a loopback connection whose other
// end the proxy serves as if the gateway's redirect had taken it on its
// way to dst (named name by DNS).
func (e *env) redirected(dst netip.AddrPort, name string) (net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		return nil, err
	}
	e.p.ServeTransparent(s, dst, name)
	return c, nil
}

func (e *env) simAddr(name string, port uint16) netip.AddrPort {
	e.t.Helper()
	as, err := e.net.Resolve(context.Background(), name)
	if err != nil || len(as) == 0 {
		e.t.Fatalf("resolve %s: %v", name, err)
	}
	return netip.AddrPortFrom(as[0], port)
}

// TestTransparent: connections taken by the gateway's redirect, with no
// proxy setting on the client, are served to their original destination
// and recorded like the proxy's flows: a TLS tunnel named by its SNI, plain
// HTTP with its full URL (each request of a keep-alive connection), a
// tunnel without SNI and other TCP named by DNS.
func TestTransparent(t *testing.T) {
	e := newEnv(t, nil)
	ztd, plain := e.simAddr(ztdHost, 443), e.simAddr(plainHost, 80)
	client := func(dst netip.AddrPort) *http.Client {
		tr := &http.Transport{
			DialContext: func(context.Context, string, string) (net.Conn, error) {
				return e.redirected(dst, "")
			},
			ForceAttemptHTTP2: true,
			TLSClientConfig:   tlsConfig(e.net),
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	get := func(c *http.Client, url string) string {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
		}
		return string(b)
	}
	zc := client(ztd)
	if got := get(zc, "https://"+ztdHost+"/bytes?n=10"); got != "pilotwire-" {
		t.Fatalf("HTTPS body %q", got)
	}
	zc.CloseIdleConnections()
	pc := client(plain)
	for _, n := range []string{"3", "4"} {
		if got := get(pc, "http://"+plainHost+"/bytes?n="+n); len(got) != int(n[0]-'0') {
			t.Fatalf("HTTP body %q", got)
		}
	}
	pc.CloseIdleConnections()

	// No SNI: named by DNS.
	c, err := e.redirected(ztd, "named.example")
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) // no ServerName: no SNI
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake without SNI: %v", err)
	}
	tc.Close()

	// Not TLS, not HTTP: relayed as TCP (the HTTP server answers 400).
	c, err = e.redirected(plain, "files.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("\x00\x01 not a request\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasPrefix(string(b), "HTTP/1.1 400") {
		t.Fatalf("TCP relay answer %q", b)
	}

	type seen struct {
		Source                  flow.Source
		Kind                    flow.Kind
		Method, Host, URL, SNI  string
		Port, Status            int
		Note, Reason            string
		Decision                flow.Decision
		HasBytesUp, HasBytesEnd bool
	}
	var got []seen
	for _, f := range e.flows() {
		got = append(got, seen{f.Source, f.Kind, f.Method, f.Host, f.URL, f.SNI, f.Port, f.Status, f.Note, f.Reason,
			f.Decision, f.BytesUp > 0, f.BytesDown > 0 && !f.End.IsZero()})
	}
	want := []seen{
		{flow.SourceGateway, flow.KindConnect, "CONNECT", ztdHost, "", ztdHost, 443, 0,
			"original destination " + ztd.String(), endClient, flow.DecisionAllowed, true, true},
		{flow.SourceGateway, flow.KindHTTP, "GET", plainHost, "http://" + plainHost + "/bytes?n=3", "", 80, 200,
			"original destination " + plain.String(), "", flow.DecisionAllowed, true, true},
		{flow.SourceGateway, flow.KindHTTP, "GET", plainHost, "http://" + plainHost + "/bytes?n=4", "", 80, 200,
			"original destination " + plain.String(), "", flow.DecisionAllowed, true, true},
		{flow.SourceGateway, flow.KindConnect, "CONNECT", "named.example", "", "", 443, 0,
			"original destination " + ztd.String() + "; host named from DNS answer", endClient, flow.DecisionAllowed, true, true},
		{flow.SourceGateway, flow.KindTCP, "", "files.example", "", "", 80, 0,
			"original destination " + plain.String() + "; host named from DNS answer", endServer, flow.DecisionAllowed, true, true},
	}
	if len(got) != len(want) {
		t.Fatalf("%d flows, want %d:\n%+v", len(got), len(want), got)
	}
	// The tunnels are closed by the client (the one without SNI right
	// after its handshake), and the server answers that close by closing
	// too: which of the two the relay sees first is a race (3 in 20 runs
	// saw the server's for the tunnel without SNI; the full suite under
	// load saw it for the first), and either is the truth.
	for _, i := range []int{0, 3} {
		if got[i].Reason == endServer {
			got[i].Reason = endClient
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("flow %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

// TestTransparentRefused: the target rules apply to the original
// destination (a redirected connection to loopback is refused and
// recorded, nothing dialled), and the policy to the name the SNI gives.
func TestTransparentRefused(t *testing.T) {
	e := newEnv(t, func(p *Proxy) {
		p.Policy = func(host string, port int) (bool, string) {
			return host != fefHost, "not in the allowlist"
		}
	})
	dials := e.net.Dials()
	c, err := e.redirected(netip.MustParseAddrPort("127.0.0.1:443"), "")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: local.example\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasPrefix(string(b), "HTTP/1.1 403") {
		t.Fatalf("answer %q", b)
	}
	c, err = e.redirected(e.simAddr(fefHost, 443), "")
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{ServerName: fefHost, RootCAs: e.net.CertPool()})
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake through a denied tunnel succeeded")
	}
	tc.Close()
	fs := e.flows()
	if len(fs) != 2 {
		t.Fatalf("%d flows, want 2: %+v", len(fs), fs)
	}
	if f := fs[0]; f.Kind != flow.KindHTTP || f.Decision != flow.DecisionDenied || f.Reason != "target 127.0.0.1 is a loopback address" ||
		f.URL != "http://local.example:443/" || f.Status != 403 {
		t.Errorf("loopback flow %+v", f)
	}
	if f := fs[1]; f.Kind != flow.KindConnect || f.Host != fefHost || f.Decision != flow.DecisionDenied || f.Reason != "not in the allowlist" {
		t.Errorf("denied tunnel flow %+v", f)
	}
	if d := e.net.Dials() - dials; d != 0 {
		t.Errorf("%d dials to the internet, want 0", d)
	}
}

// TestTransparentServerFirst: where the server speaks first (SMTP's
// banner, a server that streams at once), the client sends nothing until
// it has heard it. Off 80 and 443 the gateway waits for the client's first
// bytes a tenth of a second, not a second, before it relays: the banner
// comes within it plus the relay, and the flow is TCP named by DNS.
func TestTransparentServerFirst(t *testing.T) {
	banner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer banner.Close()
	go func() {
		for {
			c, err := banner.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "220 mail.example ESMTP\r\n")
			c.Close()
		}
	}()
	smtp := netip.MustParseAddrPort("198.18.25.25:25")
	e := newEnv(t, func(p *Proxy) {
		dial := p.Dial
		p.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == smtp.String() {
				return (&net.Dialer{}).DialContext(ctx, "tcp", banner.Addr().String())
			}
			return dial(ctx, network, addr)
		}
	})
	c, err := e.redirected(smtp, "mail.example")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	waited := time.Since(start)
	if string(b) != "220 mail.example ESMTP\r\n" {
		t.Fatalf("banner %q (%v)", b, err)
	}
	// The wait is 100 ms; a second (the wait on 443 and 80) would be the
	// old behaviour.
	if waited >= time.Second {
		t.Errorf("the banner took %v: the gateway waited as long as on 443", waited)
	}
	e.stop()
	flows := e.flows()
	if len(flows) != 1 || flows[0].Kind != flow.KindTCP || flows[0].Host != "mail.example" || flows[0].Port != 25 {
		t.Errorf("flows: %+v", flows)
	}
}

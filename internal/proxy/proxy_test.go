package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

func TestGoClientPlainHTTP(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	reused := 0
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			reused++
		}
	}}
	type result struct {
		status  int
		bodyLen int
	}
	cases := []struct {
		method, path, body string
		chunkedBody        bool
		expect             bool
		want               result
	}{
		{method: "GET", path: "/bytes?n=100000", want: result{status: 200, bodyLen: 100000}},
		{method: "GET", path: "/chunked?n=54321", want: result{status: 200, bodyLen: 54321}},
		{method: "HEAD", path: "/bytes?n=777", want: result{status: 200, bodyLen: 0}},
		{method: "GET", path: "/status?code=204", want: result{status: 204}},
		{method: "GET", path: "/status?code=404", want: result{status: 404}},
		{method: "POST", path: "/echo", body: strings.Repeat("x", 70000), want: result{status: 200}},
		{method: "PUT", path: "/echo", body: strings.Repeat("y", 5000), chunkedBody: true, want: result{status: 200}},
		{method: "POST", path: "/echo", body: strings.Repeat("z", 3000), expect: true, want: result{status: 200}},
		{method: "DELETE", path: "/status?code=202", want: result{status: 202}},
	}
	for _, tc := range cases {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
			if tc.chunkedBody {
				body = io.MultiReader(body) // hides the length: chunked
			}
		}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), tc.method, "http://"+plainHost+tc.path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Hop", "dropped")
		req.Header.Set("Connection", "X-Hop")
		if tc.expect {
			req.Header.Set("Expect", "100-continue")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: body: %v", tc.method, tc.path, err)
		}
		if resp.StatusCode != tc.want.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want.status)
		}
		if tc.body != "" {
			want := fmt.Sprintf("got %d bytes", len(tc.body))
			if !strings.HasPrefix(string(b), want) {
				t.Errorf("%s %s: server says %q, want %q", tc.method, tc.path, b, want)
			}
			if !strings.Contains(string(b), `hop=""`) {
				t.Errorf("%s %s: hop-by-hop header reached the server: %q", tc.method, tc.path, b)
			}
			if tc.chunkedBody && !strings.Contains(string(b), "te=[chunked]") {
				t.Errorf("chunked request body was not forwarded chunked: %q", b)
			}
			if tc.expect && !strings.Contains(string(b), `expect="100-continue"`) {
				t.Errorf("Expect was not forwarded: %q", b)
			}
		} else if len(b) != tc.want.bodyLen {
			t.Errorf("%s %s: body %d bytes, want %d", tc.method, tc.path, len(b), tc.want.bodyLen)
		}
		if tc.path == "/bytes?n=100000" && resp.Header.Get("X-Test") != "yes" {
			t.Errorf("response header lost: %v", resp.Header)
		}
	}
	if reused < len(cases)-2 {
		t.Errorf("keep-alive: %d of %d requests reused the connection", reused, len(cases))
	}

	flows := e.flows()
	if len(flows) != len(cases) {
		t.Fatalf("%d flows, want %d", len(flows), len(cases))
	}
	for i, tc := range cases {
		f := flows[i]
		if f.Method != tc.method || f.Host != plainHost || f.Port != 80 || f.Kind != flow.KindHTTP ||
			f.Status != tc.want.status || f.Scheme != "http" || f.URL != "http://"+plainHost+tc.path ||
			f.Decision != flow.DecisionAllowed || f.Client != "127.0.0.1" || f.Open() || f.Source != flow.SourceProxy {
			t.Errorf("flow %d: %+v, want %s %s → %d", i, f, tc.method, tc.path, tc.want.status)
		}
		// Bytes are what crossed the client connection: the payload plus
		// the request or response head (and chunk framing).
		if f.BytesDown < int64(tc.want.bodyLen) || f.BytesDown > int64(tc.want.bodyLen)+int64(tc.want.bodyLen/1000)*8+400 {
			t.Errorf("flow %d (%s %s): %d bytes down for a %d-byte body", i, tc.method, tc.path, f.BytesDown, tc.want.bodyLen)
		}
		if f.BytesUp < int64(len(tc.body)) || f.BytesUp > int64(len(tc.body))+int64(len(tc.body)/1000)*8+400 {
			t.Errorf("flow %d (%s %s): %d bytes up for a %d-byte body", i, tc.method, tc.path, f.BytesUp, len(tc.body))
		}
	}
}

// TestExactBytes checks the byte counts against what a raw client sent and
// received, keep-alive included.
func TestExactBytes(t *testing.T) {
	e := newEnv(t, nil)
	req1 := "GET http://" + plainHost + "/bytes?n=1234 HTTP/1.1\r\nHost: " + plainHost + "\r\n\r\n"
	req2 := "POST http://" + plainHost + "/echo HTTP/1.1\r\nHost: " + plainHost + "\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	var got []int
	for _, r := range []string{req1, req2} {
		if _, err := io.WriteString(c, r); err != nil {
			t.Fatal(err)
		}
		var raw strings.Builder
		resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(br, &raw)), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got = append(got, raw.Len())
	}
	flows := e.flows()
	if len(flows) != 2 {
		t.Fatalf("%d flows, want 2", len(flows))
	}
	for i, r := range []string{req1, req2} {
		if flows[i].BytesUp != int64(len(r)) || flows[i].BytesDown != int64(got[i]) {
			t.Errorf("flow %d: up %d down %d, want up %d down %d", i, flows[i].BytesUp, flows[i].BytesDown, len(r), got[i])
		}
	}
}

func TestGoClientHTTPS(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	for _, host := range []string{ztdHost, fefHost} {
		resp, err := c.Get("https://" + host + "/bytes?n=50000")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != 50000 || resp.ProtoMajor != 2 {
			t.Errorf("%s: %d bytes over %s", host, n, resp.Proto)
		}
	}
	c.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	flows := e.flows()
	if len(flows) != 2 {
		t.Fatalf("%d flows, want 2: %+v", len(flows), flows)
	}
	for i, host := range []string{ztdHost, fefHost} {
		f := flows[i]
		if f.Kind != flow.KindConnect || f.Method != "CONNECT" || f.Host != host || f.Port != 443 || f.Status != 200 ||
			f.SNI != host || f.ALPN != "h2,http/1.1" || f.TLSVersion != "1.3" || f.Note != "" || f.Open() ||
			(f.Reason != endClient && f.Reason != endServer) || f.Error != "" {
			t.Errorf("flow %d: %+v", i, f)
		}
		// TLS and HTTP/2 overhead on top of a 50000-byte body, but not more
		// than a certificate chain and framing.
		if f.BytesDown < 50000 || f.BytesDown > 50000+6000 || f.BytesUp < 300 || f.BytesUp > 4000 {
			t.Errorf("flow %d: %d up, %d down", i, f.BytesUp, f.BytesDown)
		}
	}
}

func TestCurl(t *testing.T) {
	curl := testutil.LookPath(t, "curl")
	e := newEnv(t, nil)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, e.net.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		url      string
		args     []string
		wantBody int
		check    func(flow.Flow) error
	}{
		{url: "http://" + plainHost + "/bytes?n=20000", wantBody: 20000, check: func(f flow.Flow) error {
			if f.Kind != flow.KindHTTP || f.Method != "GET" || f.Host != plainHost || f.Port != 80 || f.Status != 200 ||
				f.BytesDown < 20000 || f.BytesDown > 20400 || f.BytesUp < 50 || f.BytesUp > 400 {
				return fmt.Errorf("%+v", f)
			}
			return nil
		}},
		{url: "http://" + plainHost + "/echo", args: []string{"--data-binary", "@-"}, wantBody: -1, check: func(f flow.Flow) error {
			if f.Method != "POST" || f.Status != 200 || f.BytesUp < 9000 || f.BytesUp > 9400 {
				return fmt.Errorf("%+v", f)
			}
			return nil
		}},
		{url: "https://" + ztdHost + "/bytes?n=30000", wantBody: 30000, check: func(f flow.Flow) error {
			if f.Kind != flow.KindConnect || f.Host != ztdHost || f.Port != 443 || f.SNI != ztdHost ||
				f.ALPN != "h2,http/1.1" || f.TLSVersion != "1.3" || f.BytesDown < 30000 || f.BytesDown > 36000 ||
				f.Reason != endClient {
				return fmt.Errorf("%+v", f)
			}
			return nil
		}},
		{url: "https://" + fefHost + "/bytes?n=1000", args: []string{"--http1.1", "--tlsv1.2", "--tls-max", "1.2"}, wantBody: 1000, check: func(f flow.Flow) error {
			if f.SNI != fefHost || f.ALPN != "http/1.1" || f.TLSVersion != "1.2" {
				return fmt.Errorf("%+v", f)
			}
			return nil
		}},
	}
	for _, tc := range cases {
		args := append([]string{"-sS", "--max-time", "10", "-x", e.url.String(), "--cacert", ca, "-o", "/dev/null",
			"-w", "%{http_code} %{size_download}"}, tc.args...)
		cmd := exec.Command(curl, append(args, tc.url)...)
		cmd.Stdin = strings.NewReader(strings.Repeat("d", 9000))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", tc.url, err, out)
		}
		var code, size int
		fmt.Sscan(string(out), &code, &size)
		if code != 200 || tc.wantBody >= 0 && size != tc.wantBody {
			t.Errorf("curl %s: %s", tc.url, out)
		}
	}
	flows := e.flows()
	if len(flows) != len(cases) {
		t.Fatalf("%d flows, want %d: %+v", len(flows), len(cases), flows)
	}
	for i, tc := range cases {
		if err := tc.check(flows[i]); err != nil {
			t.Errorf("curl %s: flow %v", tc.url, err)
		}
	}
}

func TestPAC(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/proxy.pac", "/wpad.dat"} {
		resp, err := http.Get("http://" + e.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ns-proxy-autoconfig" {
			t.Errorf("%s: %d %s", path, resp.StatusCode, ct)
		}
		if !strings.Contains(string(b), `return "PROXY `+e.addr+`";`) {
			t.Errorf("%s does not point at %s:\n%s", path, e.addr, b)
		}
		if path == "/proxy.pac" {
			checkPACWithNode(t, string(b), e.addr)
		}
	}
	// With a Host header the PAC points where the client went.
	out := e.rawRequest("GET /wpad.dat HTTP/1.1\r\nHost: wpad.lab.example\r\nConnection: close\r\n\r\n")
	_, port, _ := net.SplitHostPort(e.addr)
	if !strings.Contains(out, `"PROXY wpad.lab.example:`+port+`"`) {
		t.Errorf("PAC for Host wpad.lab.example:\n%s", out)
	}
	out = e.rawRequest("GET /other HTTP/1.1\r\nHost: " + e.addr + "\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 404") || !strings.Contains(out, "/proxy.pac") {
		t.Errorf("help page:\n%s", out)
	}
	// The proxy's own answers are flows of their own kind, with the
	// client and the file served: never a device's traffic.
	flows := e.flows()
	want := []struct {
		url    string
		status int
		note   string
	}{
		{"/proxy.pac", 200, "PAC file served by the proxy"},
		{"/wpad.dat", 200, "PAC file served by the proxy"},
		{"/wpad.dat", 200, "PAC file served by the proxy"},
		{"/other", 404, "answered by the proxy"},
	}
	if len(flows) != len(want) {
		t.Fatalf("%d flows, want %d: %+v", len(flows), len(want), flows)
	}
	for i, w := range want {
		f := flows[i]
		if f.Kind != flow.KindPAC || f.URL != w.url || f.Status != w.status || f.Note != w.note ||
			f.Client != "127.0.0.1" || f.Decision != flow.DecisionAllowed || f.Method != "GET" || f.Open() {
			t.Errorf("flow %d: %+v, want a %s flow of %s, %d", i, f, flow.KindPAC, w.url, w.status)
		}
	}
}

// TestPACFallback: with PACFallbackDirect the PAC lets a device go direct
// when the proxy does not answer.
func TestPACFallback(t *testing.T) {
	e := newEnv(t, func(p *Proxy) { p.PACFallbackDirect = true })
	out := e.rawRequest("GET /proxy.pac HTTP/1.1\r\nHost: " + e.addr + "\r\nConnection: close\r\n\r\n")
	_, pac, _ := strings.Cut(out, "\r\n\r\n")
	if !strings.Contains(pac, `return "PROXY `+e.addr+`; DIRECT";`) {
		t.Fatalf("PAC with fallback:\n%s", out)
	}
	checkPACWithNode(t, pac, e.addr+"; DIRECT")
}

// TestPACWithAuth: a device fetches the PAC without proxy credentials, so
// /proxy.pac and /wpad.dat answer without 407; the client ACL still applies
// to them, and forwarding still needs credentials.
func TestPACWithAuth(t *testing.T) {
	e := newEnv(t, func(p *Proxy) { p.AuthUser, p.AuthPass = "lab", "s3cret" })
	for _, path := range []string{"/proxy.pac", "/wpad.dat"} {
		out := e.rawRequest("GET " + path + " HTTP/1.1\r\nHost: " + e.addr + "\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200 ") || !strings.Contains(out, `"PROXY `+e.addr+`"`) {
			t.Errorf("%s without credentials: %q", path, out)
		}
	}
	if out := e.rawRequest("GET http://" + plainHost + "/bytes?n=1 HTTP/1.1\r\nHost: " + plainHost + "\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 407 ") {
		t.Errorf("forwarding without credentials: %q", out)
	}
	flows := e.flows()
	if len(flows) != 3 || flows[0].Kind != flow.KindPAC || flows[0].Status != 200 || flows[1].Status != 200 || flows[2].Status != 407 {
		t.Errorf("flows: %+v", flows)
	}

	outside := newEnv(t, func(p *Proxy) {
		p.AuthUser, p.AuthPass = "lab", "s3cret"
		p.AllowClients, _ = ParsePrefixes("10.0.0.0/8")
	})
	if out := outside.rawRequest("GET /proxy.pac HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 403 ") {
		t.Errorf("PAC for a client outside the allowed networks: %q", out)
	}
	if f := outside.flows(); len(f) != 1 || f[0].Decision != flow.DecisionDenied || f[0].Kind != flow.KindPAC ||
		f[0].Reason != "client 127.0.0.1 is not in the allowed networks" {
		t.Errorf("refused PAC flow: %+v", f)
	}
}

// checkPACWithNode runs the PAC file's function in node, with the two PAC
// helpers it uses.
func checkPACWithNode(t *testing.T, pac, proxies string) {
	node := testutil.LookPath(t, "node")
	script := pac + `
function isPlainHostName(h) { return h.indexOf(".") < 0; }
console.log(FindProxyForURL("https://ztd.dds.microsoft.com/", "ztd.dds.microsoft.com"));
console.log(FindProxyForURL("http://intranet/", "intranet"));
`
	out, err := exec.Command(node, "-e", script).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	if want := "PROXY " + proxies + "\nDIRECT\n"; string(out) != want {
		t.Errorf("PAC in node says %q, want %q", out, want)
	}
}

func TestRefusedClient(t *testing.T) {
	e := newEnv(t, func(p *Proxy) { p.AllowClients, _ = ParsePrefixes("10.0.0.0/8,192.0.2.7") })
	resp, err := e.client().Get("http://" + plainHost + "/bytes?n=10")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want 403", resp.StatusCode)
	}
	if d := e.net.Dials(); d != 0 {
		t.Errorf("%d dials for a refused client", d)
	}
	f := findFlow(t, e.flows(), func(f flow.Flow) bool { return true })
	if f.Decision != flow.DecisionDenied || f.Status != 403 || f.Reason != "client 127.0.0.1 is not in the allowed networks" ||
		f.Host != plainHost || f.Method != "GET" {
		t.Errorf("flow: %+v", f)
	}
}

func TestRefusedTargets(t *testing.T) {
	e := newEnv(t, func(p *Proxy) { p.ConnectPorts = []int{443, 80} })
	// A real server on loopback, which must not be reached.
	hits := 0
	var mu sync.Mutex
	local := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go local.Serve(ln)
	t.Cleanup(func() { local.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	e.net.Point("rebind.example.net", netip.MustParseAddr("127.0.0.1"))
	e.net.Point("meta.example.net", netip.MustParseAddr("169.254.169.254"))
	e.net.Point("v6meta.example.net", netip.MustParseAddr("fd00:ec2::254"))

	cases := []struct {
		name, request, reason string
	}{
		{"loopback literal", "GET http://127.0.0.1:" + port + "/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "target 127.0.0.1 is a loopback address"},
		{"localhost v6", "GET http://[::1]:" + port + "/ HTTP/1.1\r\nHost: x\r\n\r\n", "target ::1 is a loopback address"},
		{"metadata", "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", "target 169.254.169.254 is a cloud metadata address"},
		{"metadata connect", "CONNECT 169.254.169.254:443 HTTP/1.1\r\nHost: 169.254.169.254:443\r\n\r\n", "target 169.254.169.254 is a cloud metadata address"},
		{"rebinding", "GET http://rebind.example.net:" + port + "/ HTTP/1.1\r\nHost: rebind.example.net\r\n\r\n", "target 127.0.0.1 is a loopback address (rebind.example.net resolves to it)"},
		{"rebinding connect", "CONNECT rebind.example.net:80 HTTP/1.1\r\nHost: rebind.example.net:80\r\n\r\n", "target 127.0.0.1 is a loopback address (rebind.example.net resolves to it)"},
		{"metadata by name", "CONNECT meta.example.net:443 HTTP/1.1\r\n\r\n", "target 169.254.169.254 is a cloud metadata address (meta.example.net resolves to it)"},
		{"v6 metadata by name", "CONNECT v6meta.example.net:443 HTTP/1.1\r\n\r\n", "target fd00:ec2::254 is a cloud metadata address (v6meta.example.net resolves to it)"},
		{"link-local", "CONNECT [fe80::1]:443 HTTP/1.1\r\n\r\n", "target fe80::1 is a link-local address"},
		{"unspecified", "GET http://0.0.0.0:" + port + "/ HTTP/1.1\r\nHost: x\r\n\r\n", "target 0.0.0.0 is an unspecified address"},
		{"connect port", "CONNECT " + ztdHost + ":22 HTTP/1.1\r\n\r\n", "CONNECT to port 22 is not allowed"},
		{"ftp absolute", "GET ftp://" + ztdHost + "/ HTTP/1.1\r\nHost: x\r\n\r\n", `scheme "ftp" is not proxied (only http and https)`},
		{"https absolute to loopback", "GET https://127.0.0.1:" + port + "/ HTTP/1.1\r\nHost: x\r\n\r\n", "target 127.0.0.1 is a loopback address"},
	}
	for _, tc := range cases {
		out := e.rawRequest(tc.request)
		if !strings.HasPrefix(out, "HTTP/1.1 403 ") && !strings.HasPrefix(out, "HTTP/1.1 400 ") {
			t.Errorf("%s: answer %q", tc.name, out)
		}
	}
	if hits != 0 {
		t.Errorf("the loopback server was reached %d times", hits)
	}
	if d := e.net.Dials(); d != 0 {
		t.Errorf("%d dials were made for refused targets", d)
	}
	flows := e.flows()
	if len(flows) != len(cases) {
		t.Fatalf("%d flows, want %d", len(flows), len(cases))
	}
	for i, tc := range cases {
		if f := flows[i]; f.Decision != flow.DecisionDenied || f.Reason != tc.reason {
			t.Errorf("%s: flow decision %q reason %q, want %q", tc.name, f.Decision, f.Reason, tc.reason)
		}
	}

	// With --allow-private-targets the loopback server is reached, but
	// metadata stays refused.
	e2 := newEnv(t, func(p *Proxy) { p.AllowPrivateTargets = true })
	out := e2.rawRequest("GET http://127.0.0.1:" + port + "/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") || hits != 1 {
		t.Errorf("allowed loopback: %q, %d hits", out, hits)
	}
	out = e2.rawRequest("GET http://169.254.169.254/ HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 403 ") {
		t.Errorf("metadata with private targets allowed: %q", out)
	}
	// Nor may the proxy forward to itself.
	out = e2.rawRequest("GET http://" + e2.addr + "/proxy.pac HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 403 ") || !strings.Contains(out, "is this proxy (a loop)") {
		t.Errorf("loop: %q", out)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, func(p *Proxy) { p.AuthUser, p.AuthPass = "lab", "s3cret" })
	get := func(u *url.URL, target string) *http.Response {
		t.Helper()
		tr := &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: tlsConfig(e.net)}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(target)
		if err != nil {
			if strings.Contains(err.Error(), "Proxy Authentication Required") {
				return &http.Response{StatusCode: 407}
			}
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	noAuth := e.url
	wrong := &url.URL{Scheme: "http", Host: e.addr, User: url.UserPassword("lab", "nope")}
	right := &url.URL{Scheme: "http", Host: e.addr, User: url.UserPassword("lab", "s3cret")}
	if r := get(noAuth, "http://"+plainHost+"/bytes?n=5"); r.StatusCode != 407 || r.Header.Get("Proxy-Authenticate") != `Basic realm="pilotwire"` {
		t.Errorf("no credentials: %d %v", r.StatusCode, r.Header)
	}
	if r := get(wrong, "http://"+plainHost+"/bytes?n=5"); r.StatusCode != 407 {
		t.Errorf("wrong credentials: %d", r.StatusCode)
	}
	if r := get(right, "http://"+plainHost+"/bytes?n=5"); r.StatusCode != 200 {
		t.Errorf("right credentials: %d", r.StatusCode)
	}
	if r := get(noAuth, "https://"+ztdHost+"/bytes?n=5"); r.StatusCode != 407 {
		t.Errorf("CONNECT without credentials: %d", r.StatusCode)
	}
	if r := get(right, "https://"+ztdHost+"/bytes?n=5"); r.StatusCode != 200 {
		t.Errorf("CONNECT with credentials: %d", r.StatusCode)
	}
	flows := e.flows()
	want := []struct {
		status int
		reason string
		device string
	}{
		{407, "proxy authentication required", ""},
		{407, `wrong proxy credentials (user "lab")`, ""},
		{200, "", "lab"},
		{407, "proxy authentication required", ""},
		{200, endClient, "lab"},
	}
	if len(flows) != len(want) {
		t.Fatalf("%d flows, want %d: %+v", len(flows), len(want), flows)
	}
	for i, w := range want {
		f := flows[i]
		if f.Reason == endServer && w.reason == endClient {
			f.Reason = endClient // either side may close first
		}
		if f.Status != w.status || f.Reason != w.reason || f.Device != w.device {
			t.Errorf("flow %d: status %d reason %q device %q, want %+v", i, f.Status, f.Reason, f.Device, w)
		}
	}
}

func TestDevices(t *testing.T) {
	e := newEnv(t, func(p *Proxy) {
		p.Devices = map[netip.Addr]string{netip.MustParseAddr("127.0.0.1"): "vm-01"}
	})
	resp, err := e.client().Get("http://" + plainHost + "/bytes?n=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if f := e.flows()[0]; f.Device != "vm-01" {
		t.Errorf("device %q", f.Device)
	}
}

func TestUpstream(t *testing.T) {
	// The outer proxy reaches the stand-in internet; the inner one reaches
	// only the outer one, by its real loopback address.
	outer := newEnv(t, nil)
	var mu sync.Mutex
	var inner []flow.Flow
	in := startEnv(t, &Proxy{
		Upstream:  outer.url,
		Record:    func(f flow.Flow) { mu.Lock(); inner = append(inner, f); mu.Unlock() },
		TLSConfig: tlsConfig(outer.net),
	})
	in.net = outer.net
	// An absolute https:// request goes to the upstream as a CONNECT.
	if out := in.rawRequest("GET https://" + fefHost + "/bytes?n=10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 200 ") || !strings.HasSuffix(out, "pilotwire-") {
		t.Errorf("absolute https through the upstream: %q", out)
	}
	c := in.client()
	for _, u := range []string{"http://" + plainHost + "/bytes?n=3000", "https://" + ztdHost + "/bytes?n=4000"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < 3000 {
			t.Errorf("%s: %d, %d bytes", u, resp.StatusCode, n)
		}
	}
	c.CloseIdleConnections()
	in.stop()
	flows := outer.flows()
	if len(flows) != 3 || flows[0].Host != fefHost || flows[0].Kind != flow.KindConnect || flows[0].SNI != fefHost ||
		flows[1].Host != plainHost || flows[1].Status != 200 || flows[2].Host != ztdHost || flows[2].SNI != ztdHost {
		t.Errorf("outer flows: %+v", flows)
	}
	mu.Lock()
	defer mu.Unlock()
	// The inner proxy recorded each flow once (HTTP) or twice (tunnel open
	// and end, and the hello); its last records are complete.
	var last = map[string]flow.Flow{}
	for _, f := range inner {
		last[f.Key] = f
	}
	if len(last) != 3 {
		t.Fatalf("inner flows: %+v", inner)
	}
	for _, f := range last {
		if f.Open() || f.Status != 200 || f.Decision != flow.DecisionAllowed || (f.Kind == flow.KindConnect && f.SNI != ztdHost) {
			t.Errorf("inner flow: %+v", f)
		}
	}
}

func TestHeaderLimits(t *testing.T) {
	e := newEnv(t, func(p *Proxy) {
		p.MaxHeaderBytes = 4096
		p.HeaderTimeout = 300 * time.Millisecond
	})
	big := "GET http://" + plainHost + "/ HTTP/1.1\r\nHost: " + plainHost + "\r\nX-Big: " + strings.Repeat("a", 10000) + "\r\n\r\n"
	if out := e.rawRequest(big); !strings.HasPrefix(out, "HTTP/1.1 431 ") {
		t.Errorf("oversize header: %q", out)
	}
	start := time.Now()
	out := e.rawRequest("GET http://" + plainHost + "/ HTTP/1.1\r\nHost: ")
	if !strings.HasPrefix(out, "HTTP/1.1 408 ") || time.Since(start) > 1500*time.Millisecond {
		t.Errorf("slow header: %q after %v", out, time.Since(start))
	}
	if out := e.rawRequest("NOT A REQUEST\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 400 ") {
		t.Errorf("garbage: %q", out)
	}
	flows := e.flows()
	reasons := []string{"request header over 4096 bytes", "request header not complete within 300ms", "bad request: "}
	if len(flows) != len(reasons) {
		t.Fatalf("flows: %+v", flows)
	}
	for i, r := range reasons {
		if f := flows[i]; f.Decision != flow.DecisionDenied || !strings.HasPrefix(f.Reason, r) || f.BytesUp == 0 {
			t.Errorf("flow %d: %+v, want reason %q", i, f, r)
		}
	}
}

// connectRaw opens a tunnel by hand and returns the connection after the
// proxy's 200.
func (e *env) connectRaw(target string) net.Conn {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 || br.Buffered() != 0 {
		e.t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	return c
}

func TestTunnelEnds(t *testing.T) {
	e := newEnv(t, func(p *Proxy) { p.IdleTimeout = 300 * time.Millisecond })

	// Idle: nothing is sent; the proxy closes both sides.
	c := e.connectRaw(ztdHost + ":443")
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle tunnel: read %d, %v", n, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle tunnel closed after %v", d)
	}
	c.Close()

	// SNI differs from the CONNECT host; the hello arrives in two pieces.
	c = e.connectRaw(ztdHost + ":443")
	tc := tls.Client(&slowConn{Conn: c}, &tls.Config{ServerName: "evil.example", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	_ = tc.Handshake()
	c.Close()

	// Not TLS, and the client closes.
	c = e.connectRaw(fefHost + ":443")
	io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
	time.Sleep(50 * time.Millisecond)
	c.Close()

	// TLS with the server closing first: an HTTP/1.1 request with
	// Connection: close.
	c = e.connectRaw(fefHost + ":443")
	tc = tls.Client(c, &tls.Config{ServerName: fefHost, RootCAs: e.net.CertPool(), NextProtos: []string{"http/1.1"}})
	fmt.Fprintf(tc, "GET /bytes?n=10 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", fefHost)
	b, err := io.ReadAll(tc)
	if err != nil || !strings.HasSuffix(string(b), "pilotwire-") {
		t.Errorf("TLS through tunnel: %q %v", b, err)
	}
	// close_notify ends the TLS stream before the server's FIN arrives;
	// wait for the FIN so that the server closed first.
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after close_notify: %d, %v", n, err)
	}
	c.Close()
	time.Sleep(100 * time.Millisecond)

	flows := e.flows()
	if len(flows) != 4 {
		t.Fatalf("%d flows: %+v", len(flows), flows)
	}
	if f := flows[0]; f.Reason != endIdle || f.BytesUp != 0 || f.BytesDown != 0 || f.SNI != "" {
		t.Errorf("idle: %+v", f)
	}
	if f := flows[1]; f.SNI != "evil.example" || f.Note != "SNI evil.example differs from CONNECT host "+ztdHost || f.ALPN != "http/1.1" {
		t.Errorf("mismatch: %+v", f)
	}
	// (The TLS server answers the garbage with an alert and closes first.)
	if f := flows[2]; f.Note != "tunnel does not start with a TLS ClientHello" || f.BytesUp != 21 || f.Reason != endServer {
		t.Errorf("not TLS: %+v", f)
	}
	if f := flows[3]; f.Reason != endServer || f.SNI != fefHost || f.Error != "" {
		t.Errorf("server closed: %+v", f)
	}
}

// slowConn writes in two pieces, 10 ms apart, to split the ClientHello
// over reads.
type slowConn struct {
	net.Conn
	n int
}

func (c *slowConn) Write(b []byte) (int, error) {
	c.n++
	if c.n == 1 && len(b) > 20 {
		n, err := c.Conn.Write(b[:20])
		if err != nil {
			return n, err
		}
		time.Sleep(10 * time.Millisecond)
		m, err := c.Conn.Write(b[20:])
		return n + m, err
	}
	return c.Conn.Write(b)
}

func TestMaxConns(t *testing.T) {
	e := newEnv(t, func(p *Proxy) { p.MaxConns = 1 })
	c := e.connectRaw(ztdHost + ":443")
	defer c.Close()
	get := "GET http://" + plainHost + "/bytes?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	out := e.rawRequest(get)
	const busy = "pilotwire: too many open connections, try again later\n"
	if want := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nRetry-After: 1\r\n\r\n%s", len(busy), busy); out != want {
		t.Errorf("over the limit: %q, want %q", out, want)
	}
	// Once the tunnel closes, service recovers.
	c.Close()
	recovered := false
	for range 100 {
		if out = e.rawRequest(get); strings.HasPrefix(out, "HTTP/1.1 200 ") {
			recovered = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !recovered {
		t.Errorf("2 s after the tunnel closed: %q", out)
	}
	flows := e.flows()
	f := findFlow(t, flows, func(f flow.Flow) bool { return f.Status == 503 })
	if f.Reason != "too many open connections (limit 1)" || f.Decision != flow.DecisionDenied {
		t.Errorf("flow: %+v", f)
	}
	findFlow(t, flows, func(f flow.Flow) bool { return f.Status == 200 && f.Kind == flow.KindHTTP })
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, nil)
	// An idle keep-alive connection and an open tunnel.
	c := e.client()
	resp, err := c.Get("http://" + plainHost + "/bytes?n=10")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) // else the client closes the connection
	resp.Body.Close()
	tun := e.connectRaw(ztdHost + ":443")
	defer tun.Close()

	for i := 0; ; i++ {
		got := e.p.Stats()
		if got.OpenTunnels == 1 && got.OpenConns == 2 {
			break
		}
		if i == 100 {
			t.Fatalf("stats before shutdown: %+v", got)
		}
		time.Sleep(10 * time.Millisecond) // the tunnel counts once its 200 is sent
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.p.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Errorf("Shutdown: %v, want the deadline (a tunnel was open)", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	flows := e.flows()
	if len(flows) != 2 || flows[1].Reason != endShutdown || flows[1].Open() {
		t.Errorf("flows: %+v", flows)
	}
	if got := e.p.Stats(); got.OpenTunnels != 0 || got.OpenConns != 0 {
		t.Errorf("stats after shutdown: %+v", got)
	}
}

// TestFailedDial: a target that refuses the connection is said in one
// phrase naming the target, for CONNECT and plain HTTP alike, in the answer
// and in the flow (which has no tunnel-end Reason: nothing opened).
func TestFailedDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, ps, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // nothing listens there now: connection refused
	const host = "enrollment.manage.microsoft.com"
	var port int
	fmt.Sscan(ps, &port)
	e := newEnv(t, func(p *Proxy) {
		p.AllowPrivateTargets = true
		p.ConnectPorts = []int{port}
	})
	e.net.Point(host, netip.MustParseAddr("127.0.0.1"))
	want := "dial " + host + ":" + ps + ": connection refused"
	for _, req := range []string{
		"CONNECT " + host + ":" + ps + " HTTP/1.1\r\nHost: " + host + ":" + ps + "\r\n\r\n",
		"GET http://" + host + ":" + ps + "/ HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n",
	} {
		if out := e.rawRequest(req); !strings.HasPrefix(out, "HTTP/1.1 502 ") || !strings.HasSuffix(out, "pilotwire: 502 Bad Gateway: "+want+"\n") {
			t.Errorf("answer: %q", out)
		}
	}
	flows := e.flows()
	if len(flows) != 2 {
		t.Fatalf("flows: %+v", flows)
	}
	for _, f := range flows {
		if f.Error != want || f.Reason != "" || f.Status != 502 || f.Decision != flow.DecisionAllowed {
			t.Errorf("flow %s: error %q reason %q status %d; want error %q and no reason", f.Method, f.Error, f.Reason, f.Status, want)
		}
	}
}

// TestTunnelProgress: a tunnel held open shows in the store the bytes it
// carried so far, before it closes.
func TestTunnelProgress(t *testing.T) {
	e := newEnv(t, func(p *Proxy) { p.ProgressEvery = 50 * time.Millisecond })
	const n = 100000
	c := e.connectRaw(ztdHost + ":443")
	defer c.Close()
	tc := tls.Client(c, &tls.Config{ServerName: ztdHost, RootCAs: e.net.CertPool(), NextProtos: []string{"http/1.1"}})
	fmt.Fprintf(tc, "GET /bytes?n=%d HTTP/1.1\r\nHost: %s\r\n\r\n", n, ztdHost)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.Copy(io.Discard, resp.Body); err != nil || got != n {
		t.Fatalf("body: %d bytes, %v", got, err)
	}
	// The tunnel stays open (keep-alive); its flow must show ≥ n bytes
	// down within a few flush intervals.
	var last flow.Flow
	for range 100 {
		err := e.store.Flows(t.Context(), flow.Filter{}, func(f flow.Flow) error { last = f; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if last.BytesDown >= n {
			break
		}
		time.Sleep(30 * time.Millisecond)
	}
	if !last.Open() || last.Kind != flow.KindConnect || last.BytesDown < n || last.BytesUp == 0 || last.SNI != ztdHost {
		t.Errorf("open tunnel in the store: %+v, want open with ≥ %d bytes down", last, n)
	}
	c.Close()
	flows := e.flows()
	if len(flows) != 1 || flows[0].Open() || flows[0].BytesDown < n || flows[0].Reason != endClient {
		t.Errorf("after close: %+v", flows)
	}
}

// TestAbsoluteHTTPS: "GET https://host/ HTTP/1.1" sent to the proxy is
// forwarded over TLS with the certificate verified, and recorded; a server
// whose certificate does not verify gets a 502 that says why, recorded as
// a refusal.
func TestAbsoluteHTTPS(t *testing.T) {
	e := newEnv(t, nil)
	addrs, _ := e.net.Resolve(t.Context(), ztdHost)
	e.net.Point("wrong-name.example", addrs...) // serves ztdHost's certificate

	get := func(e *env, target string) *http.Response {
		t.Helper()
		out := e.rawRequest("GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("%s: %q: %v", target, out, err)
		}
		return resp
	}
	resp := get(e, "https://"+ztdHost+"/bytes?n=1234")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(body) != 1234 || resp.Header.Get("X-Test") != "yes" {
		t.Errorf("valid certificate: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp = get(e, "https://wrong-name.example/bytes?n=5")
	body, _ = io.ReadAll(resp.Body)
	wantWrong := "TLS certificate of wrong-name.example not valid: x509: certificate is valid for " + ztdHost + ", not wrong-name.example"
	if resp.StatusCode != 502 || string(body) != "pilotwire: 502 Bad Gateway: "+wantWrong+"\n" {
		t.Errorf("wrong name: %d %q", resp.StatusCode, body)
	}
	// Without the test CA (the system's roots), the sim's certificates do
	// not verify.
	e2 := newEnv(t, func(p *Proxy) { p.TLSConfig = nil })
	resp = get(e2, "https://"+ztdHost+"/bytes?n=5")
	body, _ = io.ReadAll(resp.Body)
	wantUnknown := "TLS certificate of " + ztdHost + " not valid: x509: certificate signed by unknown authority"
	if resp.StatusCode != 502 || !strings.HasPrefix(string(body), "pilotwire: 502 Bad Gateway: "+wantUnknown) {
		t.Errorf("untrusted: %d %q", resp.StatusCode, body)
	}

	flows := e.flows()
	if len(flows) != 2 {
		t.Fatalf("flows: %+v", flows)
	}
	if f := flows[0]; f.Kind != flow.KindHTTP || f.Scheme != "https" || f.Host != ztdHost || f.Port != 443 ||
		f.URL != "https://"+ztdHost+"/bytes?n=1234" || f.Status != 200 || f.Decision != flow.DecisionAllowed || f.BytesDown < 1234 {
		t.Errorf("valid: %+v", f)
	}
	if f := flows[1]; f.Status != 502 || f.Decision != flow.DecisionDenied || f.Reason != wantWrong || f.Scheme != "https" {
		t.Errorf("wrong name: %+v", f)
	}
	if f := e2.flows(); len(f) != 1 || f[0].Decision != flow.DecisionDenied || !strings.HasPrefix(f[0].Reason, wantUnknown) {
		t.Errorf("untrusted: %+v", f)
	}
}

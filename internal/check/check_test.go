package check

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/allowlist"
	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/sim"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testHosts are the hosts most cases check: two Autopilot profile hosts,
// two Intune hosts (where TLS inspection is unsupported) and a plain-HTTP
// certificate host.
var testHosts = []string{"ztd.dds.microsoft.com", "cs.dds.microsoft.com", "enrollment.manage.microsoft.com",
	"fef.msua01.manage.microsoft.com", "ctldl.windowsupdate.com"}

func testTargets(t *testing.T) []Target {
	t.Helper()
	all, err := Targets(catalog.Default(), Selection{})
	if err != nil {
		t.Fatal(err)
	}
	var out []Target
	for _, h := range testHosts {
		i := slices.IndexFunc(all, func(x Target) bool { return x.Host == h })
		if i < 0 {
			t.Fatalf("%s is not a required host", h)
		}
		out = append(out, all[i])
	}
	return out
}

// internet serves every target on the stand-in internet.
func internet(t testing.TB, targets []Target) *sim.Internet {
	t.Helper()
	in, err := sim.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, x := range targets {
		if x.Scheme == "http" {
			_, err = in.AddHTTP(x.Host, uint16(x.Port), ok)
		} else {
			_, err = in.AddHTTPS(x.Host, uint16(x.Port), ok)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return in
}

func simOptions(in *sim.Internet) Options {
	return Options{Resolve: in.Resolve, Dial: in.Dial, RootCAs: in.CertPool(), StepTimeout: 2 * time.Second}
}

// verdicts are results as "VERDICT host:port problem", the proxy's address
// written PROXY.
func verdicts(results []Result, proxyAddr string) []string {
	var out []string
	for _, r := range results {
		s := fmt.Sprintf("%s %s:%d", strings.ToUpper(string(r.Verdict)), r.Host, r.Port)
		if r.Problem != "" {
			s += " " + r.Problem
		}
		if proxyAddr != "" {
			s = strings.ReplaceAll(s, proxyAddr, "PROXY")
		}
		out = append(out, s)
	}
	return out
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

var (
	times  = regexp.MustCompile(`\d+(\.\d)?ms`)
	jsonMS = regexp.MustCompile(`"ms": [0-9.e-]+`)
)

// golden compares got (step times masked) with testdata/name.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	got = times.ReplaceAll(got, []byte("Nms"))
	got = jsonMS.ReplaceAll(got, []byte(`"ms": N`))
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n%s", path, got)
	}
}

// TestHealthy: every required host of the catalog served on the stand-in
// internet passes, directly; the small set's report is exact in every
// format.
func TestHealthy(t *testing.T) {
	all, err := Targets(catalog.Default(), Selection{})
	if err != nil {
		t.Fatal(err)
	}
	in := internet(t, all)
	res := Run(t.Context(), all, simOptions(in))
	rep := Summarise(res, Options{})
	if !rep.Ready || rep.Failed != 0 || rep.Warned != 0 || rep.Hosts != len(all) {
		t.Errorf("all required hosts: %s", rep.Headline())
		for _, r := range res {
			if r.Verdict != Pass {
				t.Log(r.Sentence())
			}
		}
	}
	for _, r := range res {
		var names []string
		for _, s := range r.Steps {
			names = append(names, s.Name)
		}
		want := "dns tcp tls http"
		if r.Scheme == "http" {
			want = "dns tcp http"
		}
		if strings.Join(names, " ") != want {
			t.Errorf("%s: steps %q, want %q", r.Host, names, want)
		}
	}

	small := testTargets(t)
	rep = Summarise(Run(t.Context(), small, simOptions(in)), Options{})
	for _, format := range Formats {
		var buf bytes.Buffer
		if err := Render(&buf, format, rep); err != nil {
			t.Fatal(err)
		}
		golden(t, "healthy."+format, buf.Bytes())
	}
}

// TestBrokenDirect: NXDOMAIN, a black-holed port (no answer: the dialer
// waits out the step timeout), a reset during the TLS handshake, a
// refused port, a server with a certificate for other names.
func TestBrokenDirect(t *testing.T) {
	targets := testTargets(t)
	in := internet(t, targets[1:]) // ztd.dds.microsoft.com does not resolve
	// cs.dds: black hole; enrollment: reset after accept.
	blackhole, _ := in.Resolve(t.Context(), "cs.dds.microsoft.com")
	resetAddrs, _ := in.Resolve(t.Context(), "enrollment.manage.microsoft.com")
	rst, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	go func() {
		for {
			c, err := rst.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			bufio.NewReader(c).Peek(1) // the ClientHello, then RST
			c.Close()
		}
	}()
	// fef: a server presenting a certificate for another name.
	in.Point("fef.msua01.manage.microsoft.com")
	wrong, err := in.AddHTTPS("wrong.example", 4443, http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	in.Point("fef.msua01.manage.microsoft.com", wrong.Addr())
	o := simOptions(in)
	o.StepTimeout = 300 * time.Millisecond
	o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		switch {
		case strings.HasPrefix(addr, blackhole[0].String()+":"):
			<-ctx.Done()
			return nil, ctx.Err()
		case strings.HasPrefix(addr, resetAddrs[0].String()+":"):
			var d net.Dialer
			return d.DialContext(ctx, network, rst.Addr().String())
		case strings.HasPrefix(addr, wrong.Addr().String()+":"):
			return in.Dial(ctx, network, wrong.String())
		}
		return in.Dial(ctx, network, addr)
	}
	res := Run(t.Context(), targets, o)
	sameLines(t, "verdicts", verdicts(res, ""), []string{
		"FAIL ztd.dds.microsoft.com:443 does not resolve (no such host)",
		"FAIL cs.dds.microsoft.com:443 TCP connection to port 443 (" + blackhole[0].String() + ":443): no answer within 300ms (packets dropped by a firewall?)",
		"FAIL enrollment.manage.microsoft.com:443 TLS handshake failed: connection reset",
		"FAIL fef.msua01.manage.microsoft.com:443 the certificate presented is for other names (wrong.example)",
		"PASS ctldl.windowsupdate.com:80",
	})
	rep := Summarise(res, o)
	var buf bytes.Buffer
	if err := Render(&buf, "table", rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "broken.table", bytes.ReplaceAll(bytes.ReplaceAll(buf.Bytes(), []byte(blackhole[0].String()), []byte("ADDR")), []byte("300ms"), []byte("T")))
}

// serveProxy runs p on loopback until the test ends.
func serveProxy(t *testing.T, p *proxy.Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// TestThroughEnforcingProxy: pilotwire's own proxy with --enforce (an
// allowlist of the profile hosts and the certificate host) in front of a
// healthy internet.
func TestThroughEnforcingProxy(t *testing.T) {
	targets := testTargets(t)
	in := internet(t, targets)
	allow, err := allowlist.Parse("allow.txt", []byte("# lab\n.dds.microsoft.com\nctldl.windowsupdate.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveProxy(t, &proxy.Proxy{Resolve: in.Resolve, Dial: in.Dial, Policy: allowlist.Policy{Allow: allow}.Decide})
	o := simOptions(in)
	o.Proxy = &url.URL{Scheme: "http", Host: addr}
	res := Run(t.Context(), targets, o)
	sameLines(t, "verdicts", verdicts(res, addr), []string{
		"PASS ztd.dds.microsoft.com:443",
		"PASS cs.dds.microsoft.com:443",
		"FAIL enrollment.manage.microsoft.com:443 CONNECT refused with 403 by proxy PROXY",
		"FAIL fef.msua01.manage.microsoft.com:443 CONNECT refused with 403 by proxy PROXY",
		"PASS ctldl.windowsupdate.com:80",
	})
	if got := res[2].Sentence(); got != "Intune enrollment would fail: enrollment.manage.microsoft.com: CONNECT refused with 403 by proxy "+addr {
		t.Errorf("sentence: %q", got)
	}
	var steps []string
	for _, s := range res[0].Steps {
		steps = append(steps, s.Name+" "+s.Detail)
	}
	sameLines(t, "steps through the proxy", steps[:3], []string{"tcp " + addr, "connect 200 Connection established", "tls TLS 1.3, issued by \"pilotwire sim CA\""})
}

// TestProxyAuth: pilotwire's proxy asking for Basic credentials. A host
// SYSTEM reaches fails even with credentials given; a user-context host
// is checked with them, or warned about without them.
func TestProxyAuth(t *testing.T) {
	all, err := Targets(catalog.Default(), Selection{Phases: []string{"profile", "onedrive"}})
	if err != nil {
		t.Fatal(err)
	}
	targets := []Target{all[0]}
	for _, x := range all {
		if !x.System {
			targets = append(targets, x)
			break
		}
	}
	if len(targets) != 2 {
		t.Fatalf("no user-context host among %d", len(all))
	}
	in := internet(t, targets)
	addr := serveProxy(t, &proxy.Proxy{Resolve: in.Resolve, Dial: in.Dial, AuthUser: "lab", AuthPass: "s3cret"})
	o := simOptions(in)
	o.Proxy = &url.URL{Scheme: "http", Host: addr}
	u := targets[1].Host
	sameLines(t, "without credentials", verdicts(Run(t.Context(), targets, o), addr), []string{
		"FAIL ztd.dds.microsoft.com:443 proxy PROXY demands proxy authentication (407); Windows reaches this host as SYSTEM during provisioning, which cannot answer an authentication request: let it through proxy PROXY without authentication",
		"WARN " + u + ":443 proxy PROXY demands proxy authentication (407); the signed-in user's credentials may satisfy it (give --proxy-auth-file to check with them)",
	})
	o.ProxyUser, o.ProxyPass = "lab", "s3cret"
	got := verdicts(Run(t.Context(), targets, o), addr)
	sameLines(t, "with credentials", got[1:], []string{"PASS " + u + ":443"})
	o.ProxyPass = "wrong"
	got = verdicts(Run(t.Context(), targets, o), addr)
	sameLines(t, "wrong credentials", got[1:], []string{"FAIL " + u + ":443 proxy PROXY refused the given proxy credentials (407)"})
}

// testCA is a certificate authority of the test's own.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// leaf makes a certificate for name.
func (ca *testCA) leaf(name string) (*tls.Certificate, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// inspectingProxy is a TLS-inspecting proxy: it answers every CONNECT
// with 200, then terminates TLS itself with a certificate for the name
// the client asked for, signed by its own CA, and answers 200 to what
// comes inside.
func inspectingProxy(t *testing.T, ca *testCA) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return ca.leaf(h.ServerName) }}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				if req.Method != http.MethodConnect {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
					return
				}
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				if _, err := http.ReadRequest(bufio.NewReader(tc)); err == nil {
					io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestInspectingProxy: a proxy that re-signs TLS with its own CA. Where
// Microsoft does not support inspection it is an error, elsewhere a
// warning; the issuer found is named.
func TestInspectingProxy(t *testing.T) {
	targets := testTargets(t)
	in := internet(t, nil) // the proxy answers everything itself
	addr := inspectingProxy(t, newTestCA(t, "Contoso Inspection CA"))
	o := simOptions(in)
	o.Proxy = &url.URL{Scheme: "http", Host: addr}
	res := Run(t.Context(), targets, o)
	const warn = `TLS inspected: the certificate is issued by "Contoso Inspection CA", not a public CA; a device must trust that CA from the first boot (exempting the host from inspection is safer)`
	const fail = `TLS inspected: the certificate is issued by "Contoso Inspection CA", not a public CA; exempt the host from inspection. Intune: enrollment and check-in authenticate the device with its MDM certificate; Microsoft does not support TLS inspection (INT-EP ID 163)`
	sameLines(t, "verdicts", verdicts(res, addr), []string{
		"WARN ztd.dds.microsoft.com:443 " + warn,
		"WARN cs.dds.microsoft.com:443 " + warn,
		"FAIL enrollment.manage.microsoft.com:443 " + fail,
		"FAIL fef.msua01.manage.microsoft.com:443 " + fail,
		"PASS ctldl.windowsupdate.com:80",
	})
	rep := Summarise(res, o)
	if rep.Ready || rep.Failed != 2 || rep.Warned != 2 {
		t.Errorf("report: %s", rep.Headline())
	}
}

// TestTargets: region filled from a session, phase filters, session hosts.
func TestTargets(t *testing.T) {
	cat := catalog.Default()
	ts, err := Targets(cat, Selection{Phases: []string{"mdm-enrollment"}, Region: "MSUB03"})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, x := range ts {
		if strings.Contains(x.Host, "msu") {
			hosts = append(hosts, x.Host)
		}
	}
	sameLines(t, "regional hosts", hosts, []string{"fef.msub03.manage.microsoft.com", "portal.fei.msub03.manage.microsoft.com",
		"m.fei.msub03.manage.microsoft.com", "fei.msub03.manage.microsoft.com"})
	if _, err := Targets(cat, Selection{Phases: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `unknown phase "nope"`) {
		t.Errorf("unknown phase: %v", err)
	}
}

func TestTargetsCloud(t *testing.T) {
	cat := catalog.Default()
	count := map[string]int{}
	for _, cloud := range Clouds {
		ts, err := Targets(cat, Selection{Cloud: cloud})
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range ts {
			if c := CloudOf(tg.Host); cloud != "all" && c != cloud {
				t.Errorf("cloud %s: %s is of %s", cloud, tg.Host, c)
			}
		}
		count[cloud] = len(ts)
	}
	if count["usgov"] == 0 || count["china"] == 0 || count["worldwide"]+count["usgov"]+count["china"] != count["all"] {
		t.Errorf("targets by cloud: %v", count)
	}
	if _, err := Targets(cat, Selection{Cloud: "mars"}); err == nil {
		t.Error("unknown cloud accepted")
	}
}

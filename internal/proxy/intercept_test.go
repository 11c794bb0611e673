package proxy

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pilotwire/pilotwire/internal/ca"
	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/intercept"
	"github.com/pilotwire/pilotwire/internal/pattern"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// wrongCertHost resolves to ztdHost's server, which presents ztdHost's
// certificate: a server whose certificate is not valid for its name.
const wrongCertHost = "wrong-cert.example.org"

// interceptEnv is env with interception on: a lab CA in a temp dir, the
// catalog's no-inspect marks, and the hosts learned so far.
type interceptEnv struct {
	*env
	lab     *ca.CA
	ic      *intercept.Interceptor
	mu      sync.Mutex
	learned []flow.PassThrough
}

func newInterceptEnv(t *testing.T, configure func(*intercept.Options)) *interceptEnv {
	t.Helper()
	lab, err := ca.Create(filepath.Join(t.TempDir(), "ca"), "test", time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	ie := &interceptEnv{lab: lab}
	cat := catalog.Default()
	o := intercept.Options{
		CA: lab,
		DoNotInspect: func(host string) (string, bool) {
			e, ok := cat.NoInspect(host)
			return e.NoInspect, ok
		},
		OnLearn: func(p flow.PassThrough) {
			ie.mu.Lock()
			ie.learned = append(ie.learned, p)
			ie.mu.Unlock()
		},
	}
	if configure != nil {
		configure(&o)
	}
	ie.ic = intercept.New(o)
	ie.env = newEnv(t, func(p *Proxy) { p.Intercept = ie.ic })
	ztd, err := ie.net.Resolve(t.Context(), ztdHost)
	if err != nil {
		t.Fatal(err)
	}
	ie.net.Point(wrongCertHost, ztd...)
	return ie
}

// labClient is a Go client through the proxy that trusts the lab CA only
// (as a lab device does after certutil -addstore Root); h2 picks HTTP/2
// or HTTP/1.1.
func (ie *interceptEnv) labClient(h2 bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ie.lab.Cert)
	tr := &http.Transport{Proxy: http.ProxyURL(ie.url), TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	ie.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string, header ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, resp.Proto, string(body)
}

func patterns(t *testing.T, ss ...string) []pattern.Pattern {
	t.Helper()
	var out []pattern.Pattern
	for _, s := range ss {
		p, err := pattern.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// byKind splits flows into CONNECT tunnels and requests.
func byKind(fs []flow.Flow) (tunnels, requests []flow.Flow) {
	for _, f := range fs {
		switch f.Kind {
		case flow.KindConnect:
			tunnels = append(tunnels, f)
		case flow.KindHTTP:
			requests = append(requests, f)
		}
	}
	return tunnels, requests
}

// Each request inside an intercepted connection is a flow of its own,
// linked to its tunnel, over HTTP/2 and HTTP/1.1, with its headers, and
// the values of secrets in them and in the query redacted.
func TestInterceptRequests(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		name, proto := "h2", "HTTP/2.0"
		if !h2 {
			name, proto = "http1", "HTTP/1.1"
		}
		t.Run(name, func(t *testing.T) {
			ie := newInterceptEnv(t, nil)
			c := ie.labClient(h2)
			code, gotProto, body := get(t, c, "https://"+ztdHost+"/bytes?n=1000&sig=s3cr3t&api-version=1", "Authorization", "Bearer tok3n", "Cookie", "c00kie")
			if code != 200 || gotProto != proto || len(body) != 1000 {
				t.Fatalf("first GET: %d %s %d bytes", code, gotProto, len(body))
			}
			code, _, _ = get(t, c, "https://"+ztdHost+"/status?code=404")
			if code != 404 {
				t.Fatalf("second GET: %d", code)
			}
			tunnels, reqs := byKind(ie.flows())
			if len(tunnels) != 1 || len(reqs) != 2 {
				t.Fatalf("%d tunnels, %d requests, want 1 and 2", len(tunnels), len(reqs))
			}
			tun := tunnels[0]
			alpn := "h2"
			if !h2 {
				alpn = "http/1.1"
			}
			if want := "intercepted (" + alpn + "), 2 requests"; tun.Note != want || tun.SNI != ztdHost {
				t.Errorf("tunnel: note %q sni %q, want %q", tun.Note, tun.SNI, want)
			}
			slices.SortFunc(reqs, func(a, b flow.Flow) int { return a.Start.Compare(b.Start) })
			r := reqs[0]
			if r.URL != "https://"+ztdHost+"/bytes?n=1000&sig=REDACTED&api-version=1" || r.Method != "GET" || r.Status != 200 ||
				r.BytesDown != 1000 || r.Tunnel != tun.Key || r.ALPN != alpn || r.Host != ztdHost || r.Client != "127.0.0.1" {
				t.Errorf("first request's flow: %+v", r)
			}
			// "code" is an OAuth authorization code's name: redacted
			// wherever it appears.
			// The server is spoken to in the protocol the client offered.
			for _, want := range []string{"> Authorization: REDACTED\n", "> Cookie: REDACTED\n", "< Content-Length: 1000\n", "< X-Proto: " + proto + "\n", "< X-Test: yes"} {
				if !strings.Contains(r.Headers, want) {
					t.Errorf("headers: no %q in\n%s", want, r.Headers)
				}
			}
			if reqs[1].URL != "https://"+ztdHost+"/status?code=REDACTED" || reqs[1].Status != 404 || reqs[1].Tunnel != tun.Key {
				t.Errorf("second request's flow: %+v", reqs[1])
			}
			// Nothing secret reached the store.
			raw, err := os.ReadFile(ie.db)
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"s3cr3t", "tok3n", "c00kie"} {
				if strings.Contains(string(raw), secret) {
					t.Errorf("%q is in the store file", secret)
				}
			}
		})
	}
}

// A host the catalog marks no-inspect is tunnelled untouched: the client
// sees the server's own certificate (it trusts only the stand-in
// internet's CA, not the lab's).
func TestInterceptNoInspect(t *testing.T) {
	ie := newInterceptEnv(t, nil)
	code, _, body := get(t, ie.client(), "https://"+fefHost+"/bytes?n=10")
	if code != 200 || len(body) != 10 {
		t.Fatalf("GET: %d, %d bytes", code, len(body))
	}
	tunnels, reqs := byKind(ie.flows())
	if len(tunnels) != 1 || len(reqs) != 0 {
		t.Fatalf("%d tunnels, %d requests", len(tunnels), len(reqs))
	}
	if want := "not intercepted: catalog marks " + fefHost + " do not inspect: Intune:"; !strings.HasPrefix(tunnels[0].Note, want) {
		t.Errorf("note %q, want it to start %q", tunnels[0].Note, want)
	}
}

// --intercept-hosts and --no-intercept: only the named hosts are
// intercepted, and --no-intercept wins.
func TestInterceptHostOptions(t *testing.T) {
	ie := newInterceptEnv(t, func(o *intercept.Options) {
		o.Never = patterns(t, ztdHost)
	})
	if code, _, _ := get(t, ie.client(), "https://"+ztdHost+"/bytes?n=1"); code != 200 {
		t.Fatalf("GET: %d", code)
	}
	tunnels, _ := byKind(ie.flows())
	if len(tunnels) != 1 || tunnels[0].Note != "not intercepted: --no-intercept "+ztdHost {
		t.Errorf("tunnels: %+v", tunnels)
	}

	ie = newInterceptEnv(t, func(o *intercept.Options) {
		o.Hosts = patterns(t, "*.officecdn.microsoft.com")
	})
	if code, _, _ := get(t, ie.client(), "https://"+ztdHost+"/bytes?n=1"); code != 200 {
		t.Fatalf("GET: %d", code)
	}
	tunnels, _ = byKind(ie.flows())
	if len(tunnels) != 1 || tunnels[0].Note != "not intercepted: not in --intercept-hosts" {
		t.Errorf("tunnels: %+v", tunnels)
	}
}

// A client that refuses the minted certificate fails once; the host is
// learned, and its next connection is a plain tunnel that works.
func TestInterceptLearns(t *testing.T) {
	ie := newInterceptEnv(t, nil)
	c := ie.client() // trusts the stand-in internet, not the lab CA
	_, err := c.Get("https://" + ztdHost + "/bytes?n=5")
	var uae x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &uae) {
		t.Fatalf("first GET: %v, want an unknown authority", err)
	}
	// The proxy learns when the client's alert reaches it, which may be
	// just after the client saw its error: wait for it (bounded).
	for deadline := time.Now().Add(5 * time.Second); len(ie.ic.Learned()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the refusal was not learned within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, _, body := get(t, c, "https://"+ztdHost+"/bytes?n=5")
	if code != 200 || len(body) != 5 {
		t.Fatalf("second GET: %d, %d bytes", code, len(body))
	}
	tunnels, reqs := byKind(ie.flows())
	if len(tunnels) != 2 || len(reqs) != 0 {
		t.Fatalf("%d tunnels, %d requests", len(tunnels), len(reqs))
	}
	first, second := tunnels[0], tunnels[1]
	if first.Error != "client refused the certificate: remote error: tls: bad certificate" ||
		first.Reason != "client refused the minted certificate; "+ztdHost+" is passed through from now on" {
		t.Errorf("first tunnel: error %q reason %q", first.Error, first.Reason)
	}
	if !strings.HasPrefix(second.Note, "not intercepted: learned pass-through (client refused the certificate") || second.Error != "" {
		t.Errorf("second tunnel: note %q error %q", second.Note, second.Error)
	}
	ie.mu.Lock()
	defer ie.mu.Unlock()
	if len(ie.learned) != 1 || ie.learned[0].Host != ztdHost || ie.learned[0].Flow != first.Key || ie.learned[0].Client != "127.0.0.1" {
		t.Errorf("learned: %+v", ie.learned)
	}
	if got := ie.ic.Learned(); len(got) != 1 || got[0].Host != ztdHost {
		t.Errorf("Learned(): %+v", got)
	}
}

// A server whose certificate does not verify is never accepted: the
// client is answered 502 with the reason, and the request and its tunnel
// are recorded as refused.
func TestInterceptBadUpstream(t *testing.T) {
	ie := newInterceptEnv(t, nil)
	code, _, body := get(t, ie.labClient(true), "https://"+wrongCertHost+"/bytes?n=5")
	want := "server certificate for " + wrongCertHost + " not valid: x509: certificate is valid for " + ztdHost + ", not " + wrongCertHost
	if code != 502 || !strings.Contains(body, want) {
		t.Fatalf("GET: %d %q, want 502 with %q", code, body, want)
	}
	tunnels, reqs := byKind(ie.flows())
	if len(tunnels) != 1 || len(reqs) != 1 {
		t.Fatalf("%d tunnels, %d requests", len(tunnels), len(reqs))
	}
	if r := reqs[0]; r.Decision != flow.DecisionDenied || r.Status != 502 || r.Reason != want {
		t.Errorf("request: %+v", r)
	}
	if tun := tunnels[0]; tun.Decision != flow.DecisionDenied || tun.Reason != want {
		t.Errorf("tunnel: decision %q reason %q", tun.Decision, tun.Reason)
	}
}

// curl, trusting the lab CA, over HTTP/1.1 and HTTP/2.
func TestInterceptCurl(t *testing.T) {
	curl := testutil.LookPath(t, "curl")
	ie := newInterceptEnv(t, nil)
	caFile := filepath.Join(t.TempDir(), "lab.pem")
	if err := os.WriteFile(caFile, ie.lab.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"--http1.1", "--http2"} {
		out, err := exec.CommandContext(t.Context(), curl, "-sS", v, "--cacert", caFile, "--proxy", ie.url.String(),
			"-o", "/dev/null", "-w", "%{http_code} %{http_version} %{size_download}", "https://"+ztdHost+"/bytes?n=2048").CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v: %s", v, err, out)
		}
		want := "200 1.1 2048"
		if v == "--http2" {
			want = "200 2 2048"
		}
		if string(out) != want {
			t.Errorf("curl %s: %q, want %q", v, out, want)
		}
	}
	tunnels, reqs := byKind(ie.flows())
	if len(tunnels) != 2 || len(reqs) != 2 {
		t.Fatalf("%d tunnels, %d requests", len(tunnels), len(reqs))
	}
	for _, r := range reqs {
		if r.URL != "https://"+ztdHost+"/bytes?n=2048" || r.Status != 200 || r.BytesDown != 2048 {
			t.Errorf("request: %+v", r)
		}
	}
}

// Headless Chromium through the intercepting proxy, accepting the lab
// leaf by its key (--ignore-certificate-errors-spki-list; the leaf is
// minted first, and the proxy serves the one it cached): the page loads
// and its request is recorded with its URL.
func TestInterceptChromium(t *testing.T) {
	ie := newInterceptEnv(t, nil)
	leaf, err := ie.ic.Leaves().Get(ztdHost)
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(leaf.Leaf.RawSubjectPublicKeyInfo)
	b := testutil.NewBrowser(t, 30*time.Second,
		chromedp.ProxyServer(ie.url.String()),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
	if err := chromedp.Do(b.Ctx, chromedp.Navigate("https://"+ztdHost+"/bytes?n=30")); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string]("document.body.innerText"))
	if err != nil {
		t.Fatal(err)
	}
	if text != strings.Repeat("pilotwire-", 3) {
		t.Errorf("page text %q", text)
	}
	_, reqs := byKind(ie.flows())
	var found bool
	for _, r := range reqs {
		if r.URL == "https://"+ztdHost+"/bytes?n=30" && r.Status == 200 && r.BytesDown == 30 && r.ALPN == "h2" && r.Tunnel != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("no h2 request flow for the page among %+v", reqs)
	}
}

// TestTransparentInterceptRedial: every server connection of an
// intercepted redirected connection goes to its original destination,
// also the one the interception opens again when the server closed
// between requests, even when the name now resolves elsewhere.
func TestTransparentInterceptRedial(t *testing.T) {
	ie := newInterceptEnv(t, nil)
	const host = "closer.example.org"
	dst, err := ie.net.AddHTTPS(host, 443, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // the server ends each connection after an answer
		fmt.Fprintf(w, "served %s", r.URL.Path)
	}))
	if err != nil {
		t.Fatal(err)
	}
	// The name now resolves to ztdHost's server, whose certificate is not
	// for it: a connection made by name would be refused.
	ie.net.Point(host, ie.simAddr(ztdHost, 443).Addr())
	c, err := ie.redirected(dst, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	pool := x509.NewCertPool()
	pool.AddCert(ie.lab.Cert)
	tc := tls.Client(c, &tls.Config{ServerName: host, RootCAs: pool, NextProtos: []string{"http/1.1"}})
	br := bufio.NewReader(tc)
	for _, path := range []string{"/one", "/two"} {
		if _, err := fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "served "+path {
			t.Errorf("%s: %d %q, want 200 %q", path, resp.StatusCode, body, "served "+path)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/sim"
)

// withStandIn points every proxy the test starts at a stand-in internet
// serving ztd.dds.microsoft.com, cs.dds.microsoft.com and
// login.microsoftonline.com (/gz answers in gzip).
func withStandIn(t *testing.T) *sim.Internet {
	t.Helper()
	in, err := sim.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// As real services do, read what was posted before answering:
		// an answer before the body would leave the rest of it unsent
		// (and so unkept), as it depends on timing.
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
	})
	mux.HandleFunc("/gz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, strings.Repeat("compressed answer\n", 50))
		zw.Close()
	})
	for _, h := range []string{"ztd.dds.microsoft.com", "cs.dds.microsoft.com", "login.microsoftonline.com"} {
		if _, err := in.AddHTTPS(h, 443, mux); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.AddHTTP("ctldl.windowsupdate.com", 80, mux); err != nil {
		t.Fatal(err)
	}
	proxyNetwork = func(p *proxy.Proxy) {
		p.Resolve, p.Dial, p.TLSConfig = in.Resolve, in.Dial, &tls.Config{RootCAs: in.CertPool()}
	}
	t.Cleanup(func() { proxyNetwork = nil })
	return in
}

// startInProcess runs `pilotwire proxy` in-process with args and returns its
// address, its start-up lines and a stop function that returns its error.
func startInProcess(t *testing.T, args ...string) (string, []string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, append([]string{"proxy", "--listen", "127.0.0.1:0", "--ui", "off", "--grace", "100ms"}, args...), pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var addr string
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
		if m := regexp.MustCompile(`listening on (\S+)  PAC`).FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
		// The banner ends with the flows line, or with interception's.
		if strings.HasPrefix(sc.Text(), "    tunnelled untouched:") ||
			strings.HasPrefix(sc.Text(), "  flows:") && !slices.Contains(args, "--intercept") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if addr == "" {
		cancel()
		t.Fatalf("no listening line in %q (run: %v)", out, <-errc)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-errc
	}
	t.Cleanup(func() { stop() })
	return addr, out, stop
}

// labCA runs pilotwire ca init in dir/ca and ca export --pem to
// dir/root.pem, and returns the CA's directory, the PEM file and a pool
// that trusts it, as a device that installed it would.
func labCA(t *testing.T, dir string) (caDir, pemFile string, pool *x509.CertPool) {
	t.Helper()
	caDir, pemFile = filepath.Join(dir, "ca"), filepath.Join(dir, "root.pem")
	if _, _, err := runCmd(t, "ca", "init", "--ca-dir", caDir); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, "ca", "export", "--ca-dir", caDir, "--pem", "-o", pemFile); err != nil {
		t.Fatal(err)
	}
	pemData, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("ca export --pem wrote no certificate")
	}
	return caDir, pemFile, pool
}

func trusting(t *testing.T, proxyAddr string, pool *x509.CertPool) *http.Client {
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr}), TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// pilotwire ca init, then proxy --intercept: full URLs recorded, a host a
// client refused is learned, kept in the store across a restart, and
// listed by endpoints learned.
func TestProxyIntercept(t *testing.T) {
	in := withStandIn(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "flows.db")
	caDir, _, lab := labCA(t, dir)

	addr, banner, stop := startInProcess(t, "--store", store, "--intercept", "--ca-dir", caDir)
	if !strings.Contains(strings.Join(banner, "\n"), "  TLS INTERCEPTION ON: certificates minted by \"pilotwire lab CA ") ||
		!strings.Contains(banner[len(banner)-1], "23 catalog entries marked no-inspect, 0 learned hosts") {
		t.Errorf("banner:\n%s", strings.Join(banner, "\n"))
	}
	if err := get(trusting(t, addr, lab), "https://ztd.dds.microsoft.com/autopilot/profile?api-version=1.0"); err != nil {
		t.Fatal(err)
	}
	// A device that does not trust the lab CA: refused once, then tunnelled.
	real := in.CertPool()
	if err := get(trusting(t, addr, real), "https://cs.dds.microsoft.com/x"); err == nil {
		t.Fatal("a client that does not trust the lab CA got through an intercepted connection")
	}
	// Learned when the client's alert reaches the proxy, maybe just after
	// the client saw its error: wait until the store lists it (bounded).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out, _, _ := runCmd(t, "--store", store, "endpoints", "learned")
		if strings.Contains(out, "cs.dds.microsoft.com") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cs.dds.microsoft.com not learned within 5 s")
		}
	}
	if err := get(trusting(t, addr, real), "https://cs.dds.microsoft.com/x"); err != nil {
		t.Fatalf("second connection, which should be tunnelled: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	stdout, _, err := runCmd(t, "--store", store, "flows", "--host", "ztd.dds.microsoft.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, " http     GET      https://ztd.dds.microsoft.com/autopilot/profile?api-version=1.0  200 ") ||
		!strings.Contains(stdout, "intercepted (http/1.1), 1 request") {
		t.Errorf("flows:\n%s", stdout)
	}
	stdout, _, err = runCmd(t, "--store", store, "endpoints", "learned", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var learned []flow.PassThrough
	if err := json.Unmarshal([]byte(stdout), &learned); err != nil {
		t.Fatal(err)
	}
	if len(learned) != 1 || learned[0].Host != "cs.dds.microsoft.com" || learned[0].Client != "127.0.0.1" ||
		learned[0].Reason != "client refused the certificate: remote error: tls: bad certificate" {
		t.Errorf("learned: %+v", learned)
	}

	// After a restart the learned host is tunnelled from its first
	// connection.
	addr, banner, stop = startInProcess(t, "--store", store, "--intercept", "--ca-dir", caDir)
	if !strings.Contains(banner[len(banner)-1], ", 1 learned hosts") {
		t.Errorf("banner after restart: %q", banner[len(banner)-1])
	}
	if err := get(trusting(t, addr, real), "https://cs.dds.microsoft.com/y"); err != nil {
		t.Fatalf("learned host after a restart: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestProxyInterceptErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--intercept", "--ca-dir", filepath.Join(dir, "none")}, "proxy: --intercept: ca: " + filepath.Join(dir, "none", "pilotwire-ca.pem") + ": no CA (run pilotwire ca init)"},
		{[]string{"--no-intercept", "ztd.dds.microsoft.com"}, "--intercept-hosts and --no-intercept need --intercept"},
		{[]string{"--intercept", "--intercept-hosts", "a.example,bad..example"}, `"bad..example"`},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"--store", filepath.Join(dir, "x.db"), "proxy", "--ui", "off", "--listen", "127.0.0.1:0"}, tc.args...), &stdout, &stderr)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error()+stderr.String(), tc.want) {
			t.Errorf("%v: err %v (stderr %q), want usage error with %q", tc.args, err, stderr.String(), tc.want)
		}
	}
}

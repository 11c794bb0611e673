package check

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// squidOrigin serves the test hosts where Squid can reach them: HTTPS on
// ip:443 (a certificate per name from ca) and HTTP on ip:80. Squid learns
// the names from a hosts file, as it cannot use the stand-in internet.
func squidOrigin(t *testing.T, ip string, ca *testCA) {
	t.Helper()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tl, err := net.Listen("tcp", ip+":443")
	if err != nil {
		testutil.Missing(t, fmt.Sprintf("cannot listen on %s:443 (needs root): %v", ip, err))
	}
	pl, err := net.Listen("tcp", ip+":80")
	if err != nil {
		tl.Close()
		testutil.Missing(t, fmt.Sprintf("cannot listen on %s:80 (needs root): %v", ip, err))
	}
	srv := &http.Server{Handler: ok, TLSConfig: &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return ca.leaf(h.ServerName)
	}}}
	go srv.ServeTLS(tl, "", "")
	plain := &http.Server{Handler: ok}
	go plain.Serve(pl)
	t.Cleanup(func() { srv.Close(); plain.Close() })
}

// startSquid runs Debian's Squid with conf (the lines after the common
// ones) on a free loopback port until the test ends, and returns its
// address.
func startSquid(t *testing.T, bin, dir, conf string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	full := fmt.Sprintf("http_port %s\npid_filename %[2]s/squid.pid\ncache_log %[2]s/cache.log\naccess_log none\ncoredump_dir %[2]s\n"+
		"cache deny all\ncache_mem 8 MB\nshutdown_lifetime 0 seconds\nhosts_file %[2]s/hosts\ndns_nameservers 127.0.0.1\n%s", addr, dir, conf)
	confPath := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(confPath, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-N", "-f", confPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Squid's helpers hold its output open after it is killed.
	cmd.WaitDelay = 500 * time.Millisecond
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Squid -N takes 20 s over a SIGINT whatever shutdown_lifetime
		// says; nothing of it is needed after the test, and its helpers
		// end when their pipes close.
		cmd.Process.Kill()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "cache.log"))
			t.Fatalf("squid did not start on %s: %v\n%s\n%s", addr, err, out.String(), log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSquid: Debian's Squid with a dstdomain allowlist that pilotwire
// exported (the profile and certificate phases only), then with
// proxy_auth. The check's verdicts are exact.
func TestSquid(t *testing.T) {
	bin := testutil.LookPath(t, "squid")
	if testing.Short() {
		t.Skip("starts Squid")
	}
	ca := newTestCA(t, "Test Public Root")
	const ip = "127.31.0.1"
	squidOrigin(t, ip, ca)
	targets := testTargets(t)

	// Squid drops to its own user when started as root: the directory
	// must be reachable and writable by it.
	dir, err := os.MkdirTemp("", "pilotwire-check-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	var hosts strings.Builder
	for _, x := range targets {
		fmt.Fprintf(&hosts, "%s %s\n", ip, x.Host)
	}
	cat := catalog.Default()
	entries, err := cat.Select(catalog.Selection{Phases: []string{"profile", "certificates"}, Required: []catalog.Required{catalog.RequiredYes}})
	if err != nil {
		t.Fatal(err)
	}
	var list bytes.Buffer
	if err := cat.Export(&list, "squid", entries, catalog.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "allow.txt"), list.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{RootCAs: ca.pool(), StepTimeout: 5 * time.Second}

	t.Run("dstdomain", func(t *testing.T) {
		sub := filepath.Join(dir, "acl")
		os.Mkdir(sub, 0o777)
		os.WriteFile(filepath.Join(sub, "hosts"), []byte(hosts.String()), 0o644)
		addr := startSquid(t, bin, sub, fmt.Sprintf("acl autopilot dstdomain \"%s/allow.txt\"\nhttp_access allow autopilot\nhttp_access deny all\n", dir))
		o := o
		o.Proxy = &url.URL{Scheme: "http", Host: addr}
		res := Run(t.Context(), targets, o)
		sameLines(t, "verdicts", verdicts(res, addr), []string{
			"PASS ztd.dds.microsoft.com:443",
			"PASS cs.dds.microsoft.com:443",
			"FAIL enrollment.manage.microsoft.com:443 CONNECT refused with 403 by proxy PROXY",
			"FAIL fef.msua01.manage.microsoft.com:443 CONNECT refused with 403 by proxy PROXY",
			"PASS ctldl.windowsupdate.com:80",
		})
	})
	t.Run("proxy_auth", func(t *testing.T) {
		sub := filepath.Join(dir, "auth")
		os.Mkdir(sub, 0o777)
		os.WriteFile(filepath.Join(sub, "hosts"), []byte(hosts.String()), 0o644)
		fake := "/usr/lib/squid/basic_fake_auth"
		if _, err := os.Stat(fake); err != nil {
			testutil.Missing(t, "Squid's basic_fake_auth helper is not installed")
		}
		addr := startSquid(t, bin, sub, fmt.Sprintf("auth_param basic program %s\nacl authed proxy_auth REQUIRED\n"+
			"http_access allow authed\nhttp_access deny all\n", fake))
		o := o
		o.Proxy = &url.URL{Scheme: "http", Host: addr}
		o.ProxyUser, o.ProxyPass = "someone", "x"
		res := Run(t.Context(), targets, o)
		const auth = " proxy PROXY demands proxy authentication (407); Windows reaches this host as SYSTEM during provisioning, which cannot answer an authentication request: let it through proxy PROXY without authentication"
		var want []string
		for _, x := range targets {
			want = append(want, fmt.Sprintf("FAIL %s:%d%s", x.Host, x.Port, auth))
		}
		sameLines(t, "verdicts", verdicts(res, addr), want)
	})
}

package squid

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/testutil"
)

// TestRealSquid runs the installed Squid on loopback, sends a plain GET, a
// denied GET, a CONNECT tunnel and a denied CONNECT through it, and reads
// the access.log it wrote in the native and the common format. This is what
// proves the parser against a current Squid's own output (TCP_TUNNEL,
// HIER_DIRECT, NONE_NONE…), not only against samples.
func TestRealSquid(t *testing.T) {
	bin := testutil.LookPath(t, "squid")
	if testing.Short() {
		t.Skip("starts Squid")
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer origin.Close()
	tlsOrigin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret") }))
	defer tlsOrigin.Close()

	// Squid drops to its own user when started as root: it must be able to
	// reach and write this directory, which t.TempDir's private parent
	// does not allow.
	dir, err := os.MkdirTemp("", "pilotwire-squid-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	port := freePort(t)
	conf := fmt.Sprintf(`http_port 127.0.0.1:%d
pid_filename %[2]s/squid.pid
cache_log %[2]s/cache.log
coredump_dir %[2]s
access_log stdio:%[2]s/access.log squid
logformat pwcommon %%>a %%[ui %%[un [%%tl] "%%rm %%ru HTTP/%%rv" %%>Hs %%<st %%Ss:%%Sh
access_log stdio:%[2]s/common.log pwcommon
cache deny all
cache_mem 8 MB
acl denied dstdomain .denied.test
http_access deny denied
http_access allow localhost
http_access deny all
shutdown_lifetime 0 seconds
`, port, dir)
	confPath := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-N", "-f", confPath)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
	}
	defer stop()
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", proxyAddr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "cache.log"))
			t.Fatalf("squid did not start listening on %s: %v\n%s\n%s", proxyAddr, err, out.String(), log)
		}
		time.Sleep(100 * time.Millisecond)
	}

	proxyURL, _ := url.Parse("http://" + proxyAddr)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:           http.ProxyURL(proxyURL),
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test origin's own certificate
	}}
	get := func(u string) int {
		resp, err := client.Get(u)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(origin.URL + "/plain"); got != 200 {
		t.Errorf("GET through squid: %d", got)
	}
	if got := get("http://www.denied.test/x"); got != 403 {
		t.Errorf("denied GET: %d", got)
	}
	if got := get(tlsOrigin.URL + "/tunnel"); got != 200 { // CONNECT 127.0.0.1:port
		t.Errorf("GET over a CONNECT tunnel: %d", got)
	}
	client.CloseIdleConnections() // ends the tunnel, so Squid logs it
	if got := get("https://www.denied.test/"); got != 0 {
		t.Errorf("denied CONNECT gave a response: %d", got)
	}
	stop()

	originPort := origin.Listener.Addr().(*net.TCPAddr).Port
	tlsPort := tlsOrigin.Listener.Addr().(*net.TCPAddr).Port
	for _, name := range []string{"access.log", "common.log"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			flows, skips, err := readAll(t, data)
			if err != nil || len(skips) != 0 {
				t.Fatalf("err %v, skipped %v\n%s", err, skips, data)
			}
			var got []string
			for _, f := range flows {
				line := fmt.Sprintf("%s %s %s:%d %d %s", f.Kind, f.Method, f.Host, f.Port, f.Status, f.Decision)
				if f.Error != "" {
					line += " error=" + f.Error
				}
				got = append(got, line)
				if f.Client != "127.0.0.1" || f.Start.After(f.End) || time.Since(f.End) > time.Minute {
					t.Errorf("flow %+v", f)
				}
			}
			slices.Sort(got) // Squid logs a tunnel when it closes
			want := []string{
				"connect CONNECT 127.0.0.1:" + fmt.Sprint(tlsPort) + " 200 allowed",
				"connect CONNECT www.denied.test:443 403 denied",
				"http GET 127.0.0.1:" + fmt.Sprint(originPort) + " 200 allowed",
				"http GET www.denied.test:80 403 denied",
				// The readiness probe: connected, sent nothing.
				"tcp  :0 0  error=no request (squid error:transaction-end-before-headers)",
			}
			if !slices.Equal(got, want) {
				t.Errorf("flows\n got %q\nwant %q\nlog:\n%s", got, want, data)
			}
			if name == "access.log" && !strings.Contains(string(data), "TCP_TUNNEL/200") {
				t.Errorf("no TCP_TUNNEL line:\n%s", data)
			}
		})
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

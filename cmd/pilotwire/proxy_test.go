package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/web"
)

// proxyBinary builds pilotwire once per test into a temporary directory.
func proxyBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pilotwire")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runningProxy is a `pilotwire proxy` process.
type runningProxy struct {
	cmd    *exec.Cmd
	addr   string // the proxy's address
	ui     string // the status page's address
	stderr *bytes.Buffer
	waited chan error
}

// startProxy runs the binary's proxy command on loopback ports and waits
// until it says where it listens.
func startProxy(t *testing.T, bin, store string, extra ...string) *runningProxy {
	t.Helper()
	args := append([]string{"--store", store, "proxy", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	rp := &runningProxy{cmd: cmd, stderr: new(bytes.Buffer), waited: make(chan error, 1)}
	cmd.Stderr = rp.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-rp.waited
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	listening := regexp.MustCompile(`^pilotwire proxy: listening on (\S+)  PAC http://(\S+)/proxy\.pac$`)
	status := regexp.MustCompile(`^  live page: http://(\S+)/$`)
	timeout := time.After(10 * time.Second)
	for rp.addr == "" || rp.ui == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("proxy exited before listening: %s", rp.stderr)
			}
			if m := listening.FindStringSubmatch(line); m != nil {
				rp.addr = m[1]
			}
			if m := status.FindStringSubmatch(line); m != nil {
				rp.ui = m[1]
			}
		case <-timeout:
			t.Fatalf("proxy did not start: %s", rp.stderr)
		}
	}
	go func() {
		for range lines {
		}
		rp.waited <- cmd.Wait()
	}()
	return rp
}

// wait waits for the process to exit and returns its exit code.
func (rp *runningProxy) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-rp.waited:
	case <-time.After(15 * time.Second):
		t.Fatal("proxy did not exit")
	}
	return rp.cmd.ProcessState.ExitCode()
}

func proxyStoreFlows(t *testing.T, store string) []flow.Flow {
	t.Helper()
	st, err := sqlite.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []flow.Flow
	if err := st.Flows(context.Background(), flow.Filter{}, func(f flow.Flow) error {
		out = append(out, f)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// origin is a local server the proxy forwards to (it is on loopback, so
// the proxy runs with --allow-private-targets).
func origin(t *testing.T) (*httptest.Server, *httptest.Server) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.URL.Path)
	})
	plain := httptest.NewServer(h)
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(h)
	t.Cleanup(secure.Close)
	return plain, secure
}

func proxyClient(t *testing.T, addr string, secure *httptest.Server) *http.Client {
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}
	if secure != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: secure.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func get(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return nil
}

// TestProxyBinary runs the built binary: SIGTERM and kill -9.
func TestProxyBinary(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM or kill -9 on Windows")
	}
	bin := proxyBinary(t)
	t.Run("SIGTERM", func(t *testing.T) { testProxySIGTERM(t, bin) })
	t.Run("kill -9", func(t *testing.T) { testProxyKill9(t, bin) })
}

// testProxySIGTERM: after SIGTERM the proxy exits 0 with every flow
// stored, the tunnel still open at that moment included.
func testProxySIGTERM(t *testing.T, bin string) {
	store := filepath.Join(t.TempDir(), "flows.db")
	plain, secure := origin(t)
	rp := startProxy(t, bin, store, "--allow-private-targets", "--connect-ports", secure.Listener.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):], "--grace", "300ms")
	c := proxyClient(t, rp.addr, secure)
	const n = 150
	for i := range n {
		if err := get(c, fmt.Sprintf("%s/r%d", plain.URL, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := get(c, secure.URL+"/tls"); err != nil {
		t.Fatal(err)
	}
	// The live page's status counts what happened.
	if st := pageStatus(t, rp.ui); st.Proxy.OpenTunnels != 1 || st.Proxy.Requests != 151 || !st.Recording.OK {
		t.Errorf("page status: %+v", st)
	}
	if err := rp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := rp.wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM: %s", code, rp.stderr)
	}
	flows := proxyStoreFlows(t, store)
	if len(flows) != n+1 {
		t.Fatalf("%d flows stored, want %d", len(flows), n+1)
	}
	for i, f := range flows[:n] {
		if f.URL != fmt.Sprintf("%s/r%d", plain.URL, i) || f.Status != 200 || f.Open() {
			t.Errorf("flow %d: %+v", i, f)
		}
	}
	if f := flows[n]; f.Kind != flow.KindConnect || f.Open() || f.Reason != "proxy shutdown" || f.SNI != "" && f.SNI != "example.com" || f.TLSVersion != "1.3" {
		t.Errorf("tunnel flow: %+v", f)
	}
	if !strings.Contains(rp.stderr.String(), "stopped; every flow stored in "+store) {
		t.Errorf("stderr: %s", rp.stderr)
	}
}

// testProxyKill9: after kill -9, every flow recorded more than a flush
// interval before the kill is in the store, and the proxy starts again on
// the same store.
func testProxyKill9(t *testing.T, bin string) {
	store := filepath.Join(t.TempDir(), "flows.db")
	plain, _ := origin(t)
	const flush = 200 * time.Millisecond
	rp := startProxy(t, bin, store, "--allow-private-targets", "--flush-interval", flush.String())

	// Several clients send requests for about a second; each remembers
	// when its answers came.
	var mu sync.Mutex
	done := map[string]time.Time{}
	stop := time.Now().Add(1200 * time.Millisecond)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := proxyClient(t, rp.addr, nil)
			for i := 0; time.Now().Before(stop); i++ {
				u := fmt.Sprintf("%s/w%d/%d", plain.URL, w, i)
				if err := get(c, u); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				done[u] = time.Now()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Keep traffic going right up to the kill.
	kill := time.Now()
	if err := rp.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	rp.wait(t)

	// The proxy starts again on the same store, and stops cleanly.
	rp2 := startProxy(t, bin, store, "--allow-private-targets")
	if err := get(proxyClient(t, rp2.addr, nil), plain.URL+"/after-restart"); err != nil {
		t.Fatal(err)
	}
	rp2.cmd.Process.Signal(os.Interrupt)
	if code := rp2.wait(t); code != 0 {
		t.Fatalf("restarted proxy exit code %d: %s", code, rp2.stderr)
	}

	stored := map[string]bool{}
	for _, f := range proxyStoreFlows(t, store) {
		stored[f.URL] = true
	}
	// A flow waits at most one flush interval, and its batch needs a
	// moment to be written: allow 100 ms for that.
	cutoff := kill.Add(-flush - 100*time.Millisecond)
	var old, lost, recent, recentLost int
	for u, at := range done {
		if at.Before(cutoff) {
			old++
			if !stored[u] {
				lost++
				t.Errorf("flow %s, answered %v before the kill, is not stored", u, kill.Sub(at))
			}
		} else {
			recent++
			if !stored[u] {
				recentLost++
			}
		}
	}
	if old < 100 {
		t.Errorf("only %d requests before the cutoff; the test did not measure much", old)
	}
	if !stored[plain.URL+"/after-restart"] {
		t.Error("flow after the restart not stored")
	}
	t.Logf("%d flows older than %v before kill -9: %d lost; %d newer: %d lost", old, kill.Sub(cutoff), lost, recent, recentLost)
}

func TestProxyFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--flush-interval", "2s"}, "--flush-interval 2s: must be more than 0 and at most 1s"},
		{[]string{"--device", "vm-01"}, `--device "vm-01": want NAME=ADDR`},
		{[]string{"--device", "vm-01=not-an-ip"}, `--device "vm-01=not-an-ip": want NAME=ADDR`},
		{[]string{"--upstream", "https://proxy:8080"}, `--upstream "https://proxy:8080": want http://[user:pass@]host:port`},
		{[]string{"--allow-clients", "10.0.0.0/33"}, `--allow-clients: network "10.0.0.0/33"`},
		{[]string{"--auth", "nopass"}, "--auth: want USER:PASS"},
		{[]string{"--connect-ports", "443,https"}, `--connect-ports: "https" is not a port`},
		{[]string{"--max-header-bytes", "10"}, "limits must be positive"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--pac-fallback", "proxy"}, `--pac-fallback "proxy": want none or direct`},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"--store", filepath.Join(t.TempDir(), "x.db"), "proxy"}, tc.args...), &stdout, &stderr)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want usage error with %q", tc.args, err, tc.want)
		}
	}
	// --help prints the examples and exits 0.
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"proxy", "--help"}, &stdout, io.Discard)
	if exitCode(err, io.Discard) != 0 || !strings.Contains(stdout.String(), "netsh winhttp set proxy") {
		t.Errorf("help: %v\n%s", err, stdout.String())
	}
}

// TestProxyUpstreamIsSelf: an --upstream that is the proxy's own listener,
// under any spelling, is refused at start (exit 2) before anything is
// forwarded.
func TestProxyUpstreamIsSelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	for _, up := range []string{"127.0.0.1", "localhost", "0.0.0.0", "[::]"} {
		upstream := "http://" + up + ":" + port
		var stderr bytes.Buffer
		err := run(context.Background(), []string{"--store", filepath.Join(t.TempDir(), "x.db"), "proxy", "--listen", "127.0.0.1:" + port,
			"--ui", "", "--upstream", upstream}, io.Discard, &stderr)
		want := "proxy: --upstream " + upstream + ": upstream " + up + ":" + port + " is this proxy's own listener 127.0.0.1:" + port +
			": every request would come back to it"
		if code := exitCode(err, io.Discard); code != 2 || err.Error() != want {
			t.Errorf("--upstream %s: exit %d, %v; want 2, %q", upstream, code, err, want)
		}
	}
}

// TestProxyInProcess runs the command in this process: PAC and status page
// answer, flows land in the store, and cancelling the context stops it
// with a nil error (exit status 0).
func TestProxyInProcess(t *testing.T) {
	store := filepath.Join(t.TempDir(), "flows.db")
	plain, _ := origin(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	_, closedPort, _ := net.SplitHostPort(closedAddr)
	closed.Close() // a CONNECT there is refused
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--store", store, "proxy", "--listen", "127.0.0.1:0", "--ui", "", "--allow-private-targets",
			"--device", "lab-vm=127.0.0.1", "--pac-fallback", "direct", "--connect-ports", "443," + closedPort}, pw, io.Discard)
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
		if strings.HasPrefix(sc.Text(), "  flows:") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if addr == "" {
		t.Fatalf("no listening line in %q", out)
	}
	if len(out) != 3 || !strings.HasPrefix(out[1], "  Windows: netsh winhttp set proxy "+addr) {
		t.Errorf("start-up lines: %q", out)
	}
	resp, err := http.Get("http://" + addr + "/proxy.pac")
	if err != nil {
		t.Fatal(err)
	}
	pac, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-ns-proxy-autoconfig" || !strings.Contains(string(pac), `"PROXY `+addr+`; DIRECT"`) {
		t.Errorf("PAC: %s\n%s", resp.Header.Get("Content-Type"), pac)
	}
	if err := get(proxyClient(t, addr, nil), plain.URL+"/x"); err != nil {
		t.Fatal(err)
	}
	if err := get(proxyClient(t, addr, nil), "https://"+closedAddr+"/"); err == nil || !strings.Contains(err.Error(), "Bad Gateway") {
		t.Errorf("CONNECT to a closed port: %v", err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	flows := proxyStoreFlows(t, store)
	if len(flows) != 3 || flows[1].URL != plain.URL+"/x" || flows[1].Device != "lab-vm" || flows[0].Note != "PAC file served by the proxy" ||
		flows[0].Kind != flow.KindPAC || flows[0].URL != "/proxy.pac" || flows[1].Kind != flow.KindHTTP {
		t.Errorf("flows: %+v", flows)
	}
	// `pilotwire flows` shows the PAC fetch with its own kind.
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--store", store, "flows"}, &stdout, io.Discard); err != nil {
		t.Fatalf("flows: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 || strings.Fields(lines[0])[3] != "KIND" {
		t.Fatalf("flows output:\n%s", stdout.String())
	}
	// ID, date, time, client, kind, method, target, status.
	if f := strings.Fields(lines[1]); f[4] != "pac" || f[5] != "GET" || f[7] != "200" {
		t.Errorf("PAC line of flows: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[4] != "http" {
		t.Errorf("forwarded line of flows: %q", lines[2])
	}
	// A failed CONNECT's note is one phrase.
	if want := "  error: dial " + closedAddr + ": connection refused"; !strings.HasSuffix(lines[3], want) || !strings.Contains(lines[3], " connect ") {
		t.Errorf("failed CONNECT line of flows: %q, want it to end %q", lines[3], want)
	}
}

// pageStatus reads the live page's /api/status.
func pageStatus(t *testing.T, ui string) web.Status {
	t.Helper()
	resp, err := http.Get("http://" + ui + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st web.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Proxy == nil || st.Recording == nil {
		t.Fatalf("/api/status: %v %+v", err, st)
	}
	return st
}

package capture

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/pcap"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// lab is a "device" network namespace joined to this one by a veth pair:
// the device is 10.201.N.2, this side (the interface to capture) .1.
type lab struct {
	ns, host      string // namespace and host-side interface names
	hostIP, devIP string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	ip := testutil.LookPath(t, "ip")
	if os.Geteuid() != 0 {
		testutil.Missing(t, "network namespaces need root")
	}
	var b [2]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	l := &lab{ns: "pwcap-" + id, host: "pwc" + id + "h", hostIP: fmt.Sprintf("10.201.%d.1", b[0]), devIP: fmt.Sprintf("10.201.%d.2", b[0])}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// Removed even when the test fails half way; deleting the namespace
	// deletes the pair.
	t.Cleanup(func() {
		exec.Command(ip, "link", "del", l.host).Run()
		exec.Command(ip, "netns", "del", l.ns).Run()
	})
	run("netns", "add", l.ns)
	run("link", "add", l.host, "type", "veth", "peer", "name", "pwc"+id+"d")
	run("link", "set", "pwc"+id+"d", "netns", l.ns)
	run("addr", "add", l.hostIP+"/30", "dev", l.host)
	run("link", "set", l.host, "up")
	run("-n", l.ns, "addr", "add", l.devIP+"/30", "dev", "pwc"+id+"d")
	run("-n", l.ns, "link", "set", "pwc"+id+"d", "up")
	run("-n", l.ns, "link", "set", "lo", "up")
	return l
}

// device runs a command in the device's namespace.
func (l *lab) device(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The device talks HTTPS and plain HTTP to servers on this side, with no
// setting of any kind; the capture on the host side of its link sees the
// TLS connection by its SNI (open first, then ended) and the HTTP request
// with its URL, and the pcapng file it writes reads back to the same.
func TestCaptureVeth(t *testing.T) {
	curl := testutil.LookPath(t, "curl")
	l := newLab(t)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello from %s", r.Host) })
	tlsLn, err := net.Listen("tcp", l.hostIP+":443")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(handler)
	ts.Listener = tlsLn
	ts.StartTLS()
	defer ts.Close()
	plainLn, err := net.Listen("tcp", l.hostIP+":80")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: handler}
	go plain.Serve(plainLn)
	defer plain.Close()

	var mu sync.Mutex
	var got []flow.Flow
	var pcapng bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stats Stats
	go func() {
		var err error
		stats, err = Run(ctx, Options{Interface: l.host, Prefix: "cap-t-", Write: &pcapng, Record: func(f flow.Flow) {
			mu.Lock()
			got = append(got, f)
			mu.Unlock()
		}})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // the socket is open within a poll

	out := l.device(t, curl, "-sk", "--resolve", "ztd.dds.microsoft.com:443:"+l.hostIP, "https://ztd.dds.microsoft.com/profile")
	if out != "hello from ztd.dds.microsoft.com" {
		t.Fatalf("curl https: %q", out)
	}
	out = l.device(t, curl, "-s", "-H", "Host: ctldl.windowsupdate.com", "http://"+l.hostIP+"/msdownload/authrootstl.cab")
	if out != "hello from ctldl.windowsupdate.com" {
		t.Fatalf("curl http: %q", out)
	}
	// The TLS connection shows open while the capture runs.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		open := slices.ContainsFunc(got, func(f flow.Flow) bool { return f.Open() && f.SNI == "ztd.dds.microsoft.com" })
		mu.Unlock()
		if open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no open TLS flow while capturing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final := map[string]flow.Flow{}
	for _, f := range got {
		if !strings.HasPrefix(f.Key, "cap-t-") || f.SourceFile != "live:"+l.host {
			t.Errorf("flow %q from %q", f.Key, f.SourceFile)
		}
		if !f.Open() {
			final[f.Key] = f
		}
	}
	var sawTLS, sawHTTP bool
	for _, f := range final {
		switch {
		case f.Kind == flow.KindTLS && f.SNI == "ztd.dds.microsoft.com" && f.Client == l.devIP && f.Port == 443 && f.BytesDown > 0:
			sawTLS = true
		case f.Kind == flow.KindHTTP && f.URL == "http://ctldl.windowsupdate.com/msdownload/authrootstl.cab" && f.Status == 200 && f.Client == l.devIP:
			sawHTTP = true
		}
	}
	if !sawTLS || !sawHTTP || stats.Frames < 10 {
		t.Errorf("TLS %v, HTTP %v, %d frames; flows %+v", sawTLS, sawHTTP, stats.Frames, final)
	}

	// The pcapng file holds the same conversations.
	var back []flow.Flow
	if err := pcap.Read(context.Background(), &pcapng, func(f flow.Flow) error { back = append(back, f); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(back, func(f flow.Flow) bool { return f.SNI == "ztd.dds.microsoft.com" }) ||
		!slices.ContainsFunc(back, func(f flow.Flow) bool { return f.URL == "http://ctldl.windowsupdate.com/msdownload/authrootstl.cab" }) {
		t.Errorf("the pcapng file reads back to %+v", back)
	}
}

func TestCaptureNoInterface(t *testing.T) {
	_, err := Run(context.Background(), Options{Interface: "pw-no-such-if0", Record: func(flow.Flow) {}})
	if err == nil || !strings.Contains(err.Error(), `capture: interface "pw-no-such-if0"`) {
		t.Errorf("err %v", err)
	}
}

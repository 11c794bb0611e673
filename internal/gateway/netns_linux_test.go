package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pilotwire/pilotwire/internal/allowlist"
	"github.com/pilotwire/pilotwire/internal/ca"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/intercept"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/sim"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// The lab the tests build: a "device" namespace whose default route and
// DNS server is a "gateway" namespace running the gateway, which routes
// to an "internet" namespace running the stand-in internet (sim servers
// on the catalog's names, reachable on their 198.18.0.0/15 addresses, and
// a DNS server that answers those names).
//
//	device dev0 10.77.0.2 ── lan0 10.77.0.1 [gateway] wan0 10.88.0.1 ── up0 10.88.0.2 [internet]
//	            fd00:77::2        fd00:77::1           fd00:88::1        fd00:88::2
//
// Every link has IPv6 (ULA) addresses too; the internet's servers are also
// at fd00:99::/64, the address of 198.18.a.b being fd00:99::a:b (sim6),
// and its DNS gives AAAA answers for v6Name only. The internet has no
// route back to 10.77.0.0/24 or fd00:77::/64: answers reach the device
// only through the gateway's masquerade. The roles run as this test
// binary started again inside a namespace (ip netns exec), selected by
// helperEnv; the gateway's flows come back as JSON lines in a file.
const (
	helperEnv  = "PILOTWIRE_GATEWAY_HELPER" // the role of a helper process
	flowsEnv   = "PILOTWIRE_GATEWAY_FLOWS"  // the gateway's flows file
	caEnv      = "PILOTWIRE_GATEWAY_CA"     // the internet's CA file
	dhcpEnv    = "PILOTWIRE_GATEWAY_DHCP"   // the gateway's DHCP pool, if any
	labCAEnv   = "PILOTWIRE_GATEWAY_LABCA"  // with interception: the directory of its lab CA
	allowEnv   = "PILOTWIRE_GATEWAY_ALLOW"  // an allowlist file the gateway enforces, if any
	devAddr    = "10.77.0.2"
	lanAddr    = "10.77.0.1"
	wanAddr    = "10.88.0.1"
	inetAddr   = "10.88.0.2"
	devAddr6   = "fd00:77::2"
	lanAddr6   = "fd00:77::1"
	wanAddr6   = "fd00:88::1"
	inetAddr6  = "fd00:88::2"
	v6Name     = "enterpriseregistration.windows.net" // the one name with an AAAA answer
	ntpName    = "time.windows.com"
	ntpAddr    = "198.18.0.123" // the internet's NTP server
	echoAddr   = "198.18.0.200" // the internet's UDP echo, which answers with the sender's address
	echoPort   = 9
	ztdName    = "ztd.dds.microsoft.com"
	plainName  = "ctldl.windowsupdate.com"
	fefName    = "fef.msua01.manage.microsoft.com"
	helperWait = 20 * time.Second
)

// lab is the three namespaces of one test.
type lab struct {
	t                     *testing.T
	dev, gw, inet         string // namespace names
	dir                   string
	flows, ca             string // files
	ipPath                string
	rulesBefore, fwBefore string // the gateway namespace before the gateway ran
	fw6Before             string
}

// newLab builds the namespaces, or skips when the test cannot (not root,
// no ip or nft), failing instead when PILOTWIRE_REQUIRE_TOOLS is set.
func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.Missing(t, "the gateway tests make network namespaces, which needs root")
	}
	l := &lab{t: t, ipPath: testutil.LookPath(t, "ip"), dir: t.TempDir()}
	testutil.LookPath(t, "nft") // to compare rulesets as nft lists them
	id := strconv.Itoa(os.Getpid())
	l.dev, l.gw, l.inet = "pwdev"+id, "pwgw"+id, "pwinet"+id
	for _, ns := range []string{l.dev, l.gw, l.inet} {
		l.ip("netns", "add", ns)
		t.Cleanup(func() {
			// Killing what still runs there first lets the namespace go.
			if out, err := exec.Command(l.ipPath, "netns", "pids", ns).Output(); err == nil {
				for _, f := range strings.Fields(string(out)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			_ = exec.Command(l.ipPath, "netns", "del", ns).Run()
			_ = os.RemoveAll(filepath.Join("/etc/netns", ns))
		})
		l.in(ns, "ip", "link", "set", "lo", "up")
	}
	l.ip("link", "add", "dev0", "netns", l.dev, "type", "veth", "peer", "name", "lan0", "netns", l.gw)
	l.ip("link", "add", "wan0", "netns", l.gw, "type", "veth", "peer", "name", "up0", "netns", l.inet)
	for _, a := range []struct{ ns, ifc, addr, addr6 string }{
		{l.dev, "dev0", devAddr, devAddr6}, {l.gw, "lan0", lanAddr, lanAddr6}, {l.gw, "wan0", wanAddr, wanAddr6}, {l.inet, "up0", inetAddr, inetAddr6},
	} {
		l.in(a.ns, "ip", "addr", "add", a.addr+"/24", "dev", a.ifc)
		// nodad: usable at once, not after duplicate address detection.
		l.in(a.ns, "ip", "addr", "add", a.addr6+"/64", "dev", a.ifc, "nodad")
		l.in(a.ns, "ip", "link", "set", a.ifc, "up")
	}
	l.in(l.dev, "ip", "route", "add", "default", "via", lanAddr)
	l.in(l.dev, "ip", "-6", "route", "add", "default", "via", lanAddr6)
	l.in(l.gw, "ip", "route", "add", "default", "via", inetAddr)
	l.in(l.gw, "ip", "-6", "route", "add", "default", "via", inetAddr6)
	l.in(l.inet, "ip", "route", "add", "local", "198.18.0.0/15", "dev", "lo")
	l.in(l.inet, "ip", "-6", "route", "add", "local", "fd00:99::/64", "dev", "lo")
	// ip netns exec puts these over /etc/resolv.conf: the device asks the
	// gateway, and the gateway's default upstream is the internet's DNS.
	l.resolvConf(l.dev, lanAddr)
	l.resolvConf(l.gw, inetAddr)
	l.flows, l.ca = filepath.Join(l.dir, "flows.jsonl"), filepath.Join(l.dir, "ca.pem")
	l.rulesBefore, l.fwBefore, l.fw6Before = l.state()
	return l
}

func (l *lab) resolvConf(ns, server string) {
	dir := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+server+"\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) ip(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(l.ipPath, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// in runs a command in namespace ns and returns its output.
func (l *lab) in(ns string, args ...string) string {
	l.t.Helper()
	return l.ip(append([]string{"netns", "exec", ns}, args...)...)
}

// state is the gateway namespace's ruleset (as nft lists it) and IPv4
// and IPv6 forwarding.
func (l *lab) state() (rules, fwd, fwd6 string) {
	l.t.Helper()
	return l.in(l.gw, "nft", "list", "ruleset"), strings.TrimSpace(l.in(l.gw, "cat", forwardingFile)),
		strings.TrimSpace(l.in(l.gw, "cat", forwardingFile6))
}

// checkRestored fails unless the gateway namespace is as it was before.
func (l *lab) checkRestored(when string) {
	l.t.Helper()
	rules, fwd, fwd6 := l.state()
	if rules != l.rulesBefore {
		l.t.Errorf("%s: ruleset\n%s\nwant as before:\n%s", when, rules, l.rulesBefore)
	}
	if fwd != l.fwBefore || fwd6 != l.fw6Before {
		l.t.Errorf("%s: ip_forward %s and IPv6 forwarding %s, want %s and %s as before", when, fwd, fwd6, l.fwBefore, l.fw6Before)
	}
}

// helper is a helper process in a namespace.
type helper struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	mu   sync.Mutex
	log  strings.Builder // what it printed, for failures
}

// start runs role in namespace ns and waits for its "ready" line; it
// returns the helper and the rest of that line.
func (l *lab) start(ns, role string, env ...string) (*helper, string) {
	l.t.Helper()
	cmd := exec.Command(l.ipPath, "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role, flowsEnv + "=" + l.flows, caEnv + "=" + l.ca}, env...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	h := &helper{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{h: h}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("%s: %v", role, err)
	}
	l.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-h.done
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "ready"); ok {
				select {
				case ready <- strings.TrimSpace(rest):
				default:
				}
			}
			h.mu.Lock()
			h.log.WriteString(line + "\n")
			h.mu.Unlock()
		}
		h.err = cmd.Wait()
		close(h.done)
	}()
	select {
	case rest := <-ready:
		return h, rest
	case <-h.done:
		l.t.Fatalf("%s exited before it was ready: %v\n%s", role, h.err, h.output())
	case <-time.After(helperWait):
		l.t.Fatalf("%s not ready within %s\n%s", role, helperWait, h.output())
	}
	return nil, ""
}

type lockedWriter struct{ h *helper }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.h.log.Write(b)
}

func (h *helper) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

// stop sends sig and waits for the helper to end.
func (h *helper) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	// ip netns exec execs the helper: the process is the helper itself.
	if err := h.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.done:
	case <-time.After(helperWait):
		t.Fatalf("helper did not end within %s after %v\n%s", helperWait, sig, h.output())
	}
	if sig == syscall.SIGTERM && h.err != nil {
		t.Fatalf("helper ended with %v\n%s", h.err, h.output())
	}
}

// gatewayFlows reads the flows the gateway recorded: the last record of
// each Key, in the order of their first.
func (l *lab) gatewayFlows() []flow.Flow {
	l.t.Helper()
	b, err := os.ReadFile(l.flows)
	if err != nil {
		l.t.Fatal(err)
	}
	var out []flow.Flow
	at := map[string]int{}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var f flow.Flow
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			l.t.Fatalf("%s line %d: %v", l.flows, i+1, err)
		}
		if j, ok := at[f.Key]; ok {
			out[j] = f
			continue
		}
		at[f.Key] = len(out)
		out = append(out, f)
	}
	return out
}

// TestGateway: with no proxy setting, a device's curl over HTTPS and HTTP
// (IPv4, and IPv6 with curl -6) and a Go client reach the stand-in
// internet through the gateway, which records each connection with its
// SNI or Host and original destination (IPv6 ones too), and each DNS
// question with its answers, asked of its IPv4 or IPv6 address; other
// traffic is masqueraded, and its UDP noted: a QUIC Initial by its SNI,
// an NTP exchange named by DNS, a UDP echo.
// Stopped, it leaves the ruleset and forwarding as they were; killed with
// -9, the next start (or --cleanup) puts them back.
func TestGateway(t *testing.T) {
	l := newLab(t)
	inet, _ := l.start(l.inet, "internet")
	defer inet.stop(t, syscall.SIGTERM)
	// The sim gives addresses in the order names are added (runInternet).
	ztdAddr, fefAddr, plainAddr := "198.18.0.1", "198.18.0.2", "198.18.0.3"
	v6Addr := sim6(netip.MustParseAddr("198.18.0.4")).String() // v6Name's

	gw, info := l.start(l.gw, "gateway")
	if want := "upstream " + inetAddr + ":53"; info != want {
		t.Errorf("gateway started with %q, want %q (the namespace's resolv.conf)", info, want)
	}
	got := l.in(l.gw, "nft", "list", "table", "inet", TableName)
	want, err := Rules(Plan{LAN: "lan0", WAN: "wan0", TCPPort: DefaultTCPPort, DNSPort: DefaultDNSPort, Forwarding: l.fwBefore, Forwarding6: l.fw6Before})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("nft lists\n%s\nRules printed\n%s", got, want)
	}
	if _, fwd, fwd6 := l.state(); fwd != "1" || fwd6 != "1" {
		t.Errorf("ip_forward %s, IPv6 forwarding %s while running, want 1 and 1", fwd, fwd6)
	}

	curl := testutil.LookPath(t, "curl")
	body := l.in(l.dev, curl, "-sS", "--max-time", "10", "--cacert", l.ca, "https://"+ztdName+"/hello")
	if body != "hello from "+ztdName+" /hello\n" {
		t.Errorf("curl https: %q", body)
	}
	body = l.in(l.dev, curl, "-sS", "--max-time", "10", "http://"+plainName+"/file.cab?x=1")
	if body != "hello from "+plainName+" /file.cab\n" {
		t.Errorf("curl http: %q", body)
	}
	body = l.in(l.dev, curl, "-6", "-sS", "--max-time", "10", "--cacert", l.ca, "https://"+v6Name+"/hello")
	if body != "hello from "+v6Name+" /hello\n" {
		t.Errorf("curl -6 https: %q", body)
	}
	out := l.in(l.dev, "env", helperEnv+"=device", caEnv+"="+l.ca, os.Args[0], "-test.run=^TestHelperProcess$")
	wantOut := "https 200 hello from " + fefName + " /enroll\n" +
		"tcp HTTP/1.1 400 Bad Request\n" +
		"dns direct.example not found\n" +
		"dns6 " + v6Name + " " + v6Addr + "\n" +
		"udp ping from " + wanAddr + "\n" + // masqueraded: the internet has no route to the device
		"quic 1200 bytes to " + ztdAddr + ":443\n" +
		"ntp version 4 mode 4 stratum 2 from " + ntpAddr + "\n"
	if out != wantOut {
		t.Errorf("device's Go client:\n%s\nwant\n%s", out, wantOut)
	}
	if !waitUntil(5*time.Second, func() bool { return strings.Contains(inet.output(), "udp443 1200 bytes from "+wanAddr+"\n") }) {
		t.Errorf("the QUIC Initial did not reach the internet; it said\n%s", inet.output())
	}
	gw.stop(t, syscall.SIGTERM)
	l.checkRestored("after SIGTERM")

	type conn struct {
		Kind                 flow.Kind
		Method, Host, URL    string
		Port, Status         int
		SNI, TLSVersion      string
		Note, Client, Source string
	}
	var conns, udps []conn
	var echo []flow.Flow
	dnsSeen := map[string]bool{}
	for _, f := range l.gatewayFlows() {
		if f.Kind == flow.KindQUIC || f.Kind == flow.KindUDP {
			if f.Open() || f.Error != "" || f.Decision != flow.DecisionAllowed || !strings.HasPrefix(f.Key, "gw-udp-") || f.SourceFile != "" {
				t.Errorf("UDP flow %+v", f)
			}
			if f.Host == echoAddr {
				echo = append(echo, f)
				continue
			}
			udps = append(udps, conn{f.Kind, f.Method, f.Host, f.URL, f.Port, int(f.BytesUp*1000 + f.BytesDown), f.SNI, f.TLSVersion + " " + f.ALPN, f.Note, f.Client, string(f.Source)})
			continue
		}
		if f.Kind == flow.KindDNS {
			if f.Source != flow.SourceGateway || f.Port != 53 || f.End.Before(f.Start) {
				t.Errorf("DNS flow %+v", f)
			}
			dnsSeen[f.Client+" | "+f.Host+" | "+f.Note+" | "+f.Error] = true
			continue
		}
		if f.Open() {
			t.Errorf("flow still open after the gateway stopped: %+v", f)
		}
		conns = append(conns, conn{f.Kind, f.Method, f.Host, f.URL, f.Port, f.Status, f.SNI, f.TLSVersion, f.Note, f.Client, string(f.Source)})
	}
	wantConns := []conn{
		{flow.KindConnect, "CONNECT", ztdName, "", 443, 0, ztdName, "1.3", "original destination " + ztdAddr + ":443", devAddr, "gateway"},
		{flow.KindHTTP, "GET", plainName, "http://" + plainName + "/file.cab?x=1", 80, 200, "", "", "original destination " + plainAddr + ":80", devAddr, "gateway"},
		{flow.KindConnect, "CONNECT", v6Name, "", 443, 0, v6Name, "1.3", "original destination [" + v6Addr + "]:443", devAddr6, "gateway"},
		{flow.KindConnect, "CONNECT", fefName, "", 443, 0, fefName, "1.3", "original destination " + fefAddr + ":443", devAddr, "gateway"},
		{flow.KindTCP, "", plainName, "", 80, 0, "", "", "original destination " + plainAddr + ":80; host named from DNS answer", devAddr, "gateway"},
	}
	if !slices.Equal(conns, wantConns) {
		t.Errorf("connections:\n%+v\nwant\n%+v", conns, wantConns)
	}
	// The UDP it forwarded, noted from the LAN side (Status here: bytes
	// up * 1000 + bytes down). The echo was pinged until it answered.
	wantUDP := []conn{
		{flow.KindQUIC, "", ztdName, "", 443, 1200 * 1000, ztdName, "1.3 h3", "", devAddr, "gateway"},
		{flow.KindUDP, "", ntpName, "", 123, 48*1000 + 48, "", " ", "NTP version 4; destination " + ntpAddr + ":123; host named from DNS answer", devAddr, "gateway"},
	}
	if !slices.Equal(udps, wantUDP) {
		t.Errorf("UDP:\n%+v\nwant\n%+v", udps, wantUDP)
	}
	if len(echo) != 1 || echo[0].Port != echoPort || echo[0].BytesUp%4 != 0 || echo[0].BytesDown < int64(len("ping from "+wanAddr)) || echo[0].Client != devAddr {
		t.Errorf("UDP echo: %+v", echo)
	}
	// Each name's A question and answer (v6Name's AAAA, asked by curl -6
	// over IPv4 and by the Go client of the gateway's IPv6 address);
	// AAAA questions (no answers), and v6Name's A question, as the
	// client's resolver chooses to ask them.
	wantDNS := []string{
		devAddr + " | " + ztdName + " | A query; answers " + ztdAddr + " | ",
		devAddr + " | " + plainName + " | A query; answers " + plainAddr + " | ",
		devAddr + " | " + v6Name + " | AAAA query; answers " + v6Addr + " | ",
		devAddr + " | " + fefName + " | A query; answers " + fefAddr + " | ",
		devAddr + " | direct.example | A query | NXDOMAIN",
		devAddr + " | " + ntpName + " | A query; answers " + ntpAddr + " | ",
		devAddr6 + " | " + v6Name + " | AAAA query; answers " + v6Addr + " | ",
	}
	for _, d := range wantDNS {
		if !dnsSeen[d] {
			t.Errorf("no DNS flow %q; seen %v", d, dnsSeen)
		}
		delete(dnsSeen, d)
	}
	for d := range dnsSeen {
		if d == devAddr+" | "+v6Name+" | A query; answers 198.18.0.4 | " {
			continue
		}
		if parts := strings.Split(d, " | "); parts[0] != devAddr || !slices.Contains([]string{ztdName, plainName, fefName}, parts[1]) || !strings.HasSuffix(d, " | AAAA query | ") {
			t.Errorf("unexpected DNS flow %q", d)
		}
	}

	t.Run("killed then restarted", func(t *testing.T) {
		gw, _ := l.start(l.gw, "gateway")
		gw.stop(t, syscall.SIGKILL)
		if rules, fwd, _ := l.state(); rules == l.rulesBefore || fwd != "1" {
			t.Fatalf("after kill -9 the rules and forwarding should still be there; ip_forward %s, ruleset\n%s", fwd, rules)
		}
		gw, _ = l.start(l.gw, "gateway")
		if want := "leftover forwarding=" + l.fwBefore + " forwarding6=" + l.fw6Before + "\n"; !strings.Contains(gw.output(), want) {
			t.Errorf("restart said\n%s\nwant a line %q", gw.output(), want)
		}
		gw.stop(t, syscall.SIGTERM)
		l.checkRestored("killed, restarted, stopped")
	})

	t.Run("killed then cleanup", func(t *testing.T) {
		gw, _ := l.start(l.gw, "gateway")
		gw.stop(t, syscall.SIGKILL)
		_, said := l.start(l.gw, "cleanup")
		if want := `found=true forwarding="` + l.fwBefore + `" forwarding6="` + l.fw6Before + `"`; said != want {
			t.Errorf("cleanup said %q, want %q", said, want)
		}
		l.checkRestored("killed, cleaned up")
		if _, said = l.start(l.gw, "cleanup"); said != `found=false forwarding="" forwarding6=""` {
			t.Errorf("second cleanup said %q", said)
		}
	})

	t.Run("without CAP_NET_ADMIN", func(t *testing.T) {
		setpriv := testutil.LookPath(t, "setpriv")
		cmd := exec.Command(l.ipPath, "netns", "exec", l.gw, setpriv, "--bounding-set=-net_admin", "--inh-caps=-net_admin",
			os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"=cleanup")
		out, err := cmd.CombinedOutput()
		if want := "helper: " + ErrNeedNetAdmin.Error() + "\n"; err == nil || string(out) != want {
			t.Errorf("without CAP_NET_ADMIN: %v\n%q\nwant %q", err, out, want)
		}
	})
}

// TestHelperProcess is the helper processes' entry point; as a test of
// its own it does nothing.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		return
	}
	var err error
	switch role {
	case "internet":
		err = runInternet()
	case "gateway":
		err = runGateway()
	case "cleanup":
		var lo Leftover
		if lo, err = Cleanup(); err == nil {
			fmt.Printf("ready found=%v forwarding=%q forwarding6=%q\n", lo.Found, lo.Forwarding, lo.Forwarding6)
		}
	case "device":
		err = runDevice()
	case "device-udp":
		err = deviceUDP()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// hello answers every request with who it is and the path.
func hello(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s %s\n", name, r.URL.Path)
	})
}

// runInternet serves the stand-in internet in its namespace until SIGTERM:
// sim servers behind their 198.18.0.0/15 addresses (a relay to each), a
// DNS server for their names, and a UDP echo.
func runInternet() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	in, err := sim.New()
	if err != nil {
		return err
	}
	defer in.Close()
	for _, s := range []struct {
		name string
		port uint16
		tls  bool
	}{{ztdName, 443, true}, {fefName, 443, true}, {plainName, 80, false}, {v6Name, 443, true}} {
		if s.tls {
			_, err = in.AddHTTPS(s.name, s.port, hello(s.name))
		} else {
			_, err = in.AddHTTP(s.name, s.port, hello(s.name))
		}
		if err != nil {
			return err
		}
	}
	if err := os.WriteFile(os.Getenv(caEnv), in.CAPEM(), 0o644); err != nil {
		return err
	}
	// What reaches the internet on UDP 443 (the device's QUIC Initial)
	// is said on stdout, so that a test tells forwarded from dropped.
	// 198.18.0.1 is ztdName's: the sim gives addresses in the order names
	// are added.
	quic, err := serveUDP("198.18.0.1:443", func(_ net.PacketConn, b []byte, from *net.UDPAddr) {
		fmt.Printf("udp443 %d bytes from %s\n", len(b), from.IP)
	})
	if err != nil {
		return err
	}
	defer quic.Close()
	in.Point(ntpName, netip.MustParseAddr(ntpAddr))
	ntp, err := serveUDP(ntpAddr+":123", func(pc net.PacketConn, b []byte, from *net.UDPAddr) {
		if len(b) < 48 {
			return
		}
		answer := make([]byte, 48)
		answer[0] = b[0]&0x38 | 4 // the client's version, mode 4 (server)
		answer[1] = 2             // stratum
		_, _ = pc.WriteTo(answer, from)
	})
	if err != nil {
		return err
	}
	defer ntp.Close()
	for _, addr := range []string{"0.0.0.0:80", "0.0.0.0:443", "[::]:80", "[::]:443"} {
		network := "tcp4"
		if strings.HasPrefix(addr, "[") {
			network = "tcp6"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			return err
		}
		defer ln.Close()
		go relayTo(in, ln)
	}
	dnsSrv := &dns.Server{Addr: inetAddr + ":53", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		as, err := in.Resolve(context.Background(), strings.TrimSuffix(q.Name, "."))
		if err != nil {
			m.Rcode = dns.RcodeNameError
		} else if q.Qtype == dns.TypeA {
			for _, a := range as {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: a.AsSlice()})
			}
		} else if q.Qtype == dns.TypeAAAA && strings.EqualFold(q.Name, v6Name+".") {
			for _, a := range as {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 60}, AAAA: sim6(a).AsSlice()})
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	dnsSrv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = dnsSrv.ListenAndServe() }()
	<-started
	defer dnsSrv.Shutdown()
	// Bound to its address: an answer from another (the wildcard's
	// choice) would not reach the device's connected socket.
	echo, err := serveUDP(echoAddr+":"+strconv.Itoa(echoPort), func(pc net.PacketConn, b []byte, from *net.UDPAddr) {
		_, _ = pc.WriteTo([]byte(string(b)+" from "+from.IP.String()), from)
	})
	if err != nil {
		return err
	}
	defer echo.Close()
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// serveUDP listens on the IPv4 addr and hands each packet to handle, one
// at a time, until the caller closes the listener it returns.
func serveUDP(addr string, handle func(pc net.PacketConn, b []byte, from *net.UDPAddr)) (net.PacketConn, error) {
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			handle(pc, buf[:n], from.(*net.UDPAddr))
		}
	}()
	return pc, nil
}

// sim6 is the IPv6 address of the internet's server at a (198.18.a.b):
// fd00:99::a:b.
func sim6(a netip.Addr) netip.Addr {
	b := a.As4()
	return netip.AddrFrom16([16]byte{0xfd, 0x00, 0x00, 0x99, 12: 0, 13: b[2], 14: 0, 15: b[3]})
}

// sim4 is the reverse of sim6 for an address of fd00:99::/64; others are
// returned as they are.
func sim4(a netip.Addr) netip.Addr {
	b := a.As16()
	if !a.Is6() || b[0] != 0xfd || b[3] != 0x99 {
		return a
	}
	return netip.AddrFrom4([4]byte{198, 18, b[13], b[15]})
}

// relayTo passes each connection to the sim server of its local address.
func relayTo(in *sim.Internet, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			local := c.LocalAddr().(*net.TCPAddr).AddrPort()
			s, err := in.Dial(context.Background(), "tcp", netip.AddrPortFrom(sim4(local.Addr().Unmap()), local.Port()).String())
			if err != nil {
				return
			}
			defer s.Close()
			go func() { _, _ = io.Copy(s, c); s.(*net.TCPConn).CloseWrite() }()
			_, _ = io.Copy(c, s)
		}()
	}
}

// runGateway runs the gateway on lan0/wan0 until SIGTERM, writing every
// flow record as a JSON line.
func runGateway() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	f, err := os.OpenFile(os.Getenv(flowsEnv), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	record := func(fl flow.Flow) {
		b, _ := json.Marshal(fl)
		mu.Lock()
		defer mu.Unlock()
		_, _ = f.Write(append(b, '\n'))
	}
	p := &proxy.Proxy{Record: record, ProgressEvery: time.Hour}
	if dir := os.Getenv(labCAEnv); dir != "" {
		// Interception: leaves minted by a lab CA made here (the device
		// trusts its PEM, written beside it), the internet's servers
		// checked against the internet's CA.
		lab, err := ca.Create(dir, "gateway-test", time.Now(), false)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "lab.pem"), lab.PEM(), 0o644); err != nil {
			return err
		}
		pem, err := os.ReadFile(os.Getenv(caEnv))
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		p.TLSConfig = &tls.Config{RootCAs: roots}
		p.Intercept = intercept.New(intercept.Options{CA: lab})
	}
	if file := os.Getenv(allowEnv); file != "" {
		l, err := allowlist.Load(file)
		if err != nil {
			return err
		}
		p.Policy = allowlist.Policy{Allow: l}.Decide
	}
	cfg := Config{Plan: Plan{LAN: "lan0", WAN: "wan0", DropQUIC: p.Policy != nil}, Proxy: p, Record: record}
	if pool := os.Getenv(dhcpEnv); pool != "" {
		prefix, err := ParseDHCPPool(pool)
		if err != nil {
			return err
		}
		cfg.DHCP = &DHCP{Pool: prefix, Leased: func(mac net.HardwareAddr, addr netip.Addr, hostname string) {
			fmt.Printf("leased %s to %s %s\n", addr, mac, hostname)
		}}
	}
	return Run(ctx, cfg, func(s Started) {
		if s.Leftover.Found {
			fmt.Printf("leftover forwarding=%s forwarding6=%s\n", s.Leftover.Forwarding, s.Leftover.Forwarding6)
		}
		fmt.Printf("ready upstream %s\n", s.Upstream)
	})
}

// runDevice is the device's Go client: an HTTPS GET by name (DNS through
// the gateway), a connection that carries no SNI or HTTP to a name's
// address, and a UDP exchange with the internet's echo.
func runDevice() error {
	pem, err := os.ReadFile(os.Getenv(caEnv))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + fefName + "/enroll")
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("https %d %s", resp.StatusCode, b)

	as, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip4", plainName)
	if err != nil || len(as) == 0 {
		return fmt.Errorf("resolve %s: %v", plainName, err)
	}
	tc, err := net.DialTimeout("tcp", netip.AddrPortFrom(as[0], 80).String(), 5*time.Second)
	if err != nil {
		return err
	}
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = tc.Write([]byte("\x00\x01 binary\r\n\r\n"))
	b, _ = io.ReadAll(tc)
	tc.Close()
	status, _, _ := strings.Cut(string(b), "\r\n")
	fmt.Printf("tcp %s\n", status)

	// DNS sent past the gateway to another server is answered (and
	// recorded) by the gateway's forwarder all the same.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, inetAddr+":53")
	}}
	_, err = r.LookupNetIP(context.Background(), "ip4", "direct.example")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		return fmt.Errorf("direct.example: %v, want not found", err)
	}
	fmt.Println("dns direct.example not found")

	// The forwarder answers on the gateway's IPv6 address too.
	r6 := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, "["+lanAddr6+"]:53")
	}}
	as6, err := r6.LookupNetIP(context.Background(), "ip6", v6Name)
	if err != nil || len(as6) != 1 {
		return fmt.Errorf("%s over IPv6: %v %v", v6Name, as6, err)
	}
	fmt.Printf("dns6 %s %s\n", v6Name, as6[0])

	if err := deviceEcho(); err != nil {
		return err
	}
	return deviceUDP()
}

// deviceEcho is a UDP exchange with the internet's echo, which says whom
// it saw.
func deviceEcho() error {
	uc, err := net.Dial("udp4", netip.AddrPortFrom(netip.MustParseAddr(echoAddr), echoPort).String())
	if err != nil {
		return err
	}
	defer uc.Close()
	_ = uc.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 200)
	for try := 0; ; try++ {
		_, _ = uc.Write([]byte("ping"))
		n, err := uc.Read(buf)
		if err == nil {
			fmt.Printf("udp %s\n", buf[:n])
			return nil
		}
		if try == 2 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("udp echo: %w", err)
		}
		_ = uc.SetDeadline(time.Now().Add(5 * time.Second))
	}
}

// deviceUDP sends what a device sends past a proxy: a QUIC Initial for a
// catalog name (nothing answers it) and an NTP request to time.windows.com,
// each to the address DNS gave.
func deviceUDP() error {
	ctx := context.Background()
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", ztdName)
	if err != nil || len(as) == 0 {
		return fmt.Errorf("resolve %s: %v", ztdName, err)
	}
	initial, err := quicInitial(ztdName, "h3")
	if err != nil {
		return err
	}
	to := netip.AddrPortFrom(as[0], 443)
	qc, err := net.Dial("udp4", to.String())
	if err != nil {
		return err
	}
	n, err := qc.Write(initial)
	qc.Close()
	if err != nil {
		return err
	}
	fmt.Printf("quic %d bytes to %s\n", n, to)

	if as, err = net.DefaultResolver.LookupNetIP(ctx, "ip4", ntpName); err != nil || len(as) == 0 {
		return fmt.Errorf("resolve %s: %v", ntpName, err)
	}
	nc, err := net.Dial("udp4", netip.AddrPortFrom(as[0], 123).String())
	if err != nil {
		return err
	}
	defer nc.Close()
	req := make([]byte, 48)
	req[0] = 0x23 // LI 0, version 4, mode 3 (client)
	if _, err := nc.Write(req); err != nil {
		return err
	}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	answer := make([]byte, 100)
	if n, err = nc.Read(answer); err != nil || n != 48 {
		return fmt.Errorf("ntp: %d bytes, %v", n, err)
	}
	fmt.Printf("ntp version %d mode %d stratum %d from %s\n", answer[0]>>3&7, answer[0]&7, answer[1], as[0])
	return nil
}

// newLabOnline is a lab with its stand-in internet running (stopped when
// the test ends), that helper, and curl to use from the device.
func newLabOnline(t *testing.T) (*lab, *helper, string) {
	l := newLab(t)
	curl := testutil.LookPath(t, "curl")
	inet, _ := l.start(l.inet, "internet")
	t.Cleanup(func() { inet.stop(t, syscall.SIGTERM) })
	return l, inet, curl
}

// waitUntil polls cond every 10 ms for up to d and reports whether it
// came true.
func waitUntil(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestGatewayIntercept: with interception on, a device with no proxy
// setting that trusts the lab CA gets its HTTPS opened: the tunnel named
// by SNI, each request inside a flow of its own with its full URL and
// status, from the gateway as the tunnel is, every server connection to
// the original destination.
func TestGatewayIntercept(t *testing.T) {
	l, _, curl := newLabOnline(t)
	labDir := filepath.Join(l.dir, "labca")
	gw, _ := l.start(l.gw, "gateway", labCAEnv+"="+labDir)
	labPEM := filepath.Join(labDir, "lab.pem")
	// Two requests on one connection, then one on a second.
	body := l.in(l.dev, curl, "-sS", "--max-time", "10", "--http1.1", "--cacert", labPEM,
		"https://"+ztdName+"/first?tenant=a", "https://"+ztdName+"/second")
	if want := "hello from " + ztdName + " /first\nhello from " + ztdName + " /second\n"; body != want {
		t.Errorf("curl through interception: %q, want %q", body, want)
	}
	body = l.in(l.dev, curl, "-sS", "--max-time", "10", "--http2", "--cacert", labPEM, "https://"+ztdName+"/third")
	if want := "hello from " + ztdName + " /third\n"; body != want {
		t.Errorf("curl --http2 through interception: %q, want %q", body, want)
	}
	// Not trusting the lab CA, the device's handshake fails.
	if out, err := exec.Command(l.ipPath, "netns", "exec", l.dev, curl, "-sS", "--max-time", "10", "--cacert", l.ca, "https://"+fefName+"/enroll").CombinedOutput(); err == nil {
		t.Errorf("a device not trusting the lab CA got through: %s", out)
	}
	gw.stop(t, syscall.SIGTERM)

	type req struct {
		Kind          flow.Kind
		Method, URL   string
		Status        int
		Source        flow.Source
		TunnelOfFirst bool
	}
	var tunnels []flow.Flow
	var reqs []req
	for _, f := range l.gatewayFlows() {
		switch {
		case f.Kind == flow.KindConnect && f.Host == ztdName:
			tunnels = append(tunnels, f)
		case f.Kind == flow.KindHTTP && f.Host == ztdName:
			reqs = append(reqs, req{f.Kind, f.Method, f.URL, f.Status, f.Source, len(tunnels) > 0 && f.Tunnel == tunnels[0].Key})
		}
	}
	if len(tunnels) != 2 {
		t.Fatalf("%d tunnels to %s, want 2: %+v", len(tunnels), ztdName, tunnels)
	}
	for i, want := range []string{"intercepted (http/1.1), 2 requests", "intercepted (h2), 1 request"} {
		f := tunnels[i]
		if f.Source != flow.SourceGateway || f.SNI != ztdName || !strings.Contains(f.Note, want) || !strings.Contains(f.Note, "original destination 198.18.0.1:443") {
			t.Errorf("tunnel %d: %+v; want a gateway tunnel noted %q", i, f, want)
		}
	}
	wantReqs := []req{
		{flow.KindHTTP, "GET", "https://" + ztdName + "/first?tenant=a", 200, flow.SourceGateway, true},
		{flow.KindHTTP, "GET", "https://" + ztdName + "/second", 200, flow.SourceGateway, true},
		{flow.KindHTTP, "GET", "https://" + ztdName + "/third", 200, flow.SourceGateway, false},
	}
	if !slices.Equal(reqs, wantReqs) {
		t.Errorf("requests:\n%+v\nwant\n%+v", reqs, wantReqs)
	}
}

// TestGatewayEnforce: with an allowlist enforced, the gateway is a lab
// firewall for devices with no proxy setting: an allowed host works, a TLS
// connection to another is closed before its handshake and plain HTTP gets
// 403, both recorded as denied with the rule that denied them.
func TestGatewayEnforce(t *testing.T) {
	l, inet, curl := newLabOnline(t)
	list := filepath.Join(l.dir, "allow.txt")
	if err := os.WriteFile(list, []byte("# the lab's allowlist\n"+ztdName+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gw, _ := l.start(l.gw, "gateway", allowEnv+"="+list)
	if body := l.in(l.dev, curl, "-sS", "--max-time", "10", "--cacert", l.ca, "https://"+ztdName+"/hello"); body != "hello from "+ztdName+" /hello\n" {
		t.Errorf("allowed host: %q", body)
	}
	if out, err := exec.Command(l.ipPath, "netns", "exec", l.dev, curl, "-sS", "--max-time", "10", "--cacert", l.ca, "https://"+fefName+"/enroll").CombinedOutput(); err == nil {
		t.Errorf("a denied host answered over TLS: %s", out)
	}
	if out := l.in(l.dev, curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "http://"+plainName+"/file.cab"); out != "403" {
		t.Errorf("a denied host over plain HTTP: status %q, want 403", out)
	}
	// QUIC, which the gateway cannot judge, is dropped (NTP still works):
	// nothing reaches the internet's UDP 443, which TestGateway's Initial
	// does reach.
	out := l.in(l.dev, "env", helperEnv+"=device-udp", os.Args[0], "-test.run=^TestHelperProcess$")
	if want := "quic 1200 bytes to 198.18.0.1:443\nntp version 4 mode 4 stratum 2 from " + ntpAddr + "\n"; out != want {
		t.Errorf("device's UDP: %q, want %q", out, want)
	}
	// The NTP answer came back after the Initial went: had it been
	// forwarded, it would be there by now, give or take the output's way.
	if waitUntil(300*time.Millisecond, func() bool { return strings.Contains(inet.output(), "udp443") }) {
		t.Errorf("QUIC reached the internet while enforcing:\n%s", inet.output())
	}
	plan := Plan{LAN: "lan0", WAN: "wan0", TCPPort: DefaultTCPPort, DNSPort: DefaultDNSPort, Forwarding: l.fwBefore, Forwarding6: l.fw6Before, DropQUIC: true}
	if want, err := Rules(plan); err != nil || l.in(l.gw, "nft", "list", "table", "inet", TableName) != want {
		t.Errorf("nft lists\n%s\nwant\n%s (%v)", l.in(l.gw, "nft", "list", "table", "inet", TableName), want, err)
	}
	gw.stop(t, syscall.SIGTERM)
	l.checkRestored("after SIGTERM")

	type seen struct {
		Kind     flow.Kind
		Host     string
		Decision flow.Decision
		Status   int
		Denied   bool // the reason names the allowlist
	}
	var got []seen
	for _, f := range l.gatewayFlows() {
		if f.Kind == flow.KindDNS {
			continue
		}
		got = append(got, seen{f.Kind, f.Host, f.Decision, f.Status, strings.Contains(f.Reason, "allow") || f.Reason == quicDropped})
	}
	want := []seen{
		{flow.KindConnect, ztdName, flow.DecisionAllowed, 0, false},
		{flow.KindConnect, fefName, flow.DecisionDenied, 0, true},
		{flow.KindHTTP, plainName, flow.DecisionDenied, 403, true},
		{flow.KindQUIC, ztdName, flow.DecisionDenied, 0, true},
		{flow.KindUDP, ntpName, flow.DecisionAllowed, 0, false},
	}
	if !slices.Equal(got, want) {
		t.Errorf("flows:\n%+v\nwant\n%+v", got, want)
	}
}

// TestGatewayDHCP: with --dhcp, a device with no address of its own (its
// IPv4 address removed) gets one from the gateway with busybox's udhcpc,
// the gateway as its router and DNS server, and then reaches the stand-in
// internet by name through it.
func TestGatewayDHCP(t *testing.T) {
	l := newLab(t)
	busybox := testutil.LookPath(t, "busybox")
	curl := testutil.LookPath(t, "curl")
	inet, _ := l.start(l.inet, "internet")
	defer inet.stop(t, syscall.SIGTERM)
	l.in(l.dev, "ip", "-4", "addr", "flush", "dev", "dev0") // its default route goes too
	gw, _ := l.start(l.gw, "gateway", dhcpEnv+"=10.77.0.64/26")

	// udhcpc runs this at each event; bound: configure the interface and
	// say what the lease holds.
	said := filepath.Join(l.dir, "udhcpc.out")
	script := filepath.Join(l.dir, "udhcpc.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
case "$1" in
bound|renew)
	ip -4 addr add "$ip/$mask" dev "$interface"
	ip route replace default via "$router"
	echo "$1 ip=$ip subnet=$subnet router=$router dns=$dns lease=$lease serverid=$serverid" >> `+said+`
	;;
esac
`), 0o755); err != nil {
		t.Fatal(err)
	}
	l.in(l.dev, busybox, "udhcpc", "-i", "dev0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", script, "-x", "hostname:pwdevice")
	got, err := os.ReadFile(said)
	if err != nil {
		t.Fatal(err)
	}
	if want := "bound ip=10.77.0.64 subnet=255.255.255.0 router=10.77.0.1 dns=10.77.0.1 lease=3600 serverid=10.77.0.1\n"; string(got) != want {
		t.Errorf("udhcpc said %q, want %q", got, want)
	}
	body := l.in(l.dev, curl, "-sS", "--max-time", "10", "http://"+plainName+"/after-dhcp")
	if body != "hello from "+plainName+" /after-dhcp\n" {
		t.Errorf("curl after DHCP: %q", body)
	}
	gw.stop(t, syscall.SIGTERM)
	l.checkRestored("after SIGTERM")
	if out := gw.output(); !regexp.MustCompile(`(?m)^leased 10\.77\.0\.64 to ([0-9a-f]{2}:){5}[0-9a-f]{2} pwdevice$`).MatchString(out) {
		t.Errorf("the gateway did not tell of the lease:\n%s", out)
	}
	var sawHTTP bool
	for _, f := range l.gatewayFlows() {
		if f.Kind == flow.KindHTTP && f.URL == "http://"+plainName+"/after-dhcp" && f.Client == "10.77.0.64" && f.Status == 200 {
			sawHTTP = true
		}
	}
	if !sawHTTP {
		t.Errorf("no HTTP flow from the leased address: %+v", l.gatewayFlows())
	}
}

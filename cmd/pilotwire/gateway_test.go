package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

func TestGatewayFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "--lan and --wan are required"},
		{[]string{"--lan", "eth1"}, "--lan and --wan are required"},
		{[]string{"--lan", "eth1", "--wan", "eth1"}, `--lan and --wan are both "eth1"`},
		{[]string{"--lan", "a very long interface name", "--wan", "eth0"}, `--lan "a very long interface name": not an interface name`},
		{[]string{"--lan", "eth1", "--wan", "eth0", "--dns-upstream", "dns.example"}, `--dns-upstream: DNS upstream "dns.example": not an IP address or IP:port`},
		{[]string{"--lan", "eth1", "--wan", "eth0", "--flush-interval", "3s"}, "--flush-interval 3s: must be more than 0 and at most 1s"},
		{[]string{"--lan", "eth1", "--wan", "eth0", "--dhcp", "192.168.77.0"}, `--dhcp: DHCP pool "192.168.77.0": not a CIDR such as 192.168.77.0/24`},
		{[]string{"--lan", "eth1", "--wan", "eth0", "--dhcp", "fd00:77::/64"}, "--dhcp: DHCP pool fd00:77::/64: not IPv4"},
		{[]string{"--lan", "eth1", "--wan", "eth0", "--device", "vm"}, `--device "vm": want NAME=ADDR`},
		{[]string{"--lan", "eth1", "--wan", "eth0", "--bodies", "64KiB"}, "gateway: --bodies needs --intercept"},
		{[]string{"--lan", "eth1", "--wan", "eth0", "--no-intercept", "*.example.org"}, "gateway: --intercept-hosts and --no-intercept need --intercept"},
		{[]string{"--lan", "eth1", "--wan", "eth0", "--intercept", "--ca-dir", "/nonexistent/pilotwire-ca"}, "gateway: --intercept: "},
		{[]string{"--cleanup", "--print-rules"}, "--cleanup and --print-rules do not go together"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		err := run(context.Background(), append([]string{"--store", filepath.Join(t.TempDir(), "x.db"), "gateway"}, tc.args...), io.Discard, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want usage error with %q", tc.args, err, tc.want)
		}
	}
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"gateway", "--help"}, &stdout, io.Discard)
	if exitCode(err, io.Discard) != 0 || !strings.Contains(stdout.String(), "--print-rules") {
		t.Errorf("help: %v\n%s", err, stdout.String())
	}
}

// TestGatewayPrintRules: --print-rules prints the table and changes
// nothing (it needs no privilege).
func TestGatewayPrintRules(t *testing.T) {
	if runtime.GOOS != "linux" {
		err := run(context.Background(), []string{"gateway", "--lan", "eth1", "--wan", "eth0", "--print-rules"}, io.Discard, io.Discard)
		if exitCode(err, io.Discard) != 1 || !strings.Contains(err.Error(), "not supported here") {
			t.Errorf("not Linux: %v", err)
		}
		return
	}
	fwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"gateway", "--lan", "eth1", "--wan", "eth0", "--print-rules"}, &stdout, &stderr)
	want := `table inet pilotwire {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "eth1" udp dport 53 redirect to :53
		iifname "eth1" tcp dport 53 redirect to :53
		iifname "eth1" fib daddr type != local meta l4proto tcp redirect to :3129
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		iifname "eth1" oifname "eth0" masquerade comment "pilotwire gateway; net.ipv4.ip_forward was ` + strings.TrimSpace(string(fwd)) + `"
	}
}
`
	if err != nil || stdout.String() != want || stderr.Len() != 0 {
		t.Errorf("--print-rules: %v\n%s\nwant\n%s\nstderr %s", err, stdout.String(), want, stderr.String())
	}
}

// TestGatewayBinary runs pilotwire gateway in a network namespace of its
// own (two veth pairs going nowhere): it starts and says where the devices point,
// records a DNS query (its upstream refuses: a flow with the error),
// stops on SIGTERM leaving no rule, and --cleanup removes what kill -9
// left.
func TestGatewayBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pilotwire gateway runs on Linux only")
	}
	if os.Geteuid() != 0 {
		testutil.Missing(t, "the gateway test makes a network namespace, which needs root")
	}
	ip := testutil.LookPath(t, "ip")
	nft := testutil.LookPath(t, "nft")
	bash := testutil.LookPath(t, "bash")
	ns := "pwcli" + strconv.Itoa(os.Getpid())
	sh := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ip, append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(ip, "netns", "del", ns).Run() })
	for i, ifc := range []string{"lan0", "wan0"} {
		sh(ip, "link", "add", ifc, "type", "veth", "peer", "name", ifc+"p")
		sh(ip, "link", "set", ifc+"p", "up")
		sh(ip, "addr", "add", "10.99."+strconv.Itoa(i)+".1/24", "dev", ifc)
		sh(ip, "link", "set", ifc, "up")
	}
	sh(ip, "link", "set", "lo", "up")
	before := sh(nft, "list", "ruleset")
	bin := proxyBinary(t)
	store := filepath.Join(t.TempDir(), "gw.db")
	// Nothing listens on port 1: the forwarder's question is refused at once.
	args := []string{"netns", "exec", ns, bin, "--store", store, "gateway", "--lan", "lan0", "--wan", "wan0", "--dns-upstream", "10.99.0.1:1"}

	start := func() (*exec.Cmd, *bytes.Buffer, chan error) {
		t.Helper()
		cmd := exec.Command(ip, args...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr := new(bytes.Buffer)
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		lines := make(chan string, 10)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
			waited <- cmd.Wait()
		}()
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
			}
		})
		select {
		case line := <-lines:
			want := "pilotwire gateway: devices on lan0: gateway and DNS server 10.99.0.1 (TCP redirected to 10.99.0.1:3129, DNS to 10.99.0.1:53, upstream 10.99.0.1:1)"
			if line != want {
				t.Fatalf("first line %q, want %q; stderr %s", line, want, stderr)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("gateway did not start: %s", stderr)
		}
		go func() {
			for range lines {
			}
		}()
		return cmd, stderr, waited
	}
	wait := func(waited chan error) {
		t.Helper()
		select {
		case <-waited:
		case <-time.After(15 * time.Second):
			t.Fatal("gateway did not exit")
		}
	}

	cmd, stderr, waited := start()
	// A DNS query for ztd.dds.microsoft.com A, from the namespace itself.
	query := `printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03ztd\x03dds\x09microsoft\x03com\x00\x00\x01\x00\x01' > /dev/udp/10.99.0.1/53`
	sh(bash, "-c", query)
	// Wait until the flow is stored (every --flush-interval), at most 10 s.
	for i := 0; i < 100 && len(proxyStoreFlows(t, store)) == 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wait(waited)
	if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(stderr.String(), "pilotwire gateway: stopped; rules removed; every flow stored in "+store) {
		t.Errorf("SIGTERM: exit %d, stderr %s", code, stderr)
	}
	if got := sh(nft, "list", "ruleset"); got != before {
		t.Errorf("after SIGTERM the ruleset is\n%s\nwant\n%s", got, before)
	}
	fs := proxyStoreFlows(t, store)
	if len(fs) != 1 || fs[0].Kind != flow.KindDNS || fs[0].Source != flow.SourceGateway || fs[0].Host != "ztd.dds.microsoft.com" ||
		fs[0].Note != "A query" || !strings.HasPrefix(fs[0].Error, "upstream 10.99.0.1:1: ") || fs[0].Client != "10.99.0.1" {
		t.Errorf("flows %+v", fs)
	}

	cmd, _, waited = start()
	_ = cmd.Process.Kill()
	wait(waited)
	if got := sh(nft, "list", "ruleset"); got == before {
		t.Fatal("kill -9 left no table: nothing for --cleanup to do")
	}
	cleanup := func() string {
		t.Helper()
		var out bytes.Buffer
		c := exec.Command(ip, "netns", "exec", ns, bin, "gateway", "--cleanup")
		c.Stdout, c.Stderr = &out, &out
		if err := c.Run(); err != nil {
			t.Fatalf("--cleanup: %v\n%s", err, out.String())
		}
		return out.String()
	}
	fwd := strings.TrimSpace(sh("cat", "/proc/sys/net/ipv4/ip_forward"))
	if fwd != "1" {
		t.Errorf("ip_forward %s after kill -9, want 1 (still set)", fwd)
	}
	if got, want := cleanup(), "pilotwire gateway: removed table inet pilotwire left by an earlier run; IPv4 forwarding set back to 0\n"; got != want {
		t.Errorf("--cleanup said %q, want %q", got, want)
	}
	if got := sh(nft, "list", "ruleset"); got != before {
		t.Errorf("after --cleanup the ruleset is\n%s", got)
	}
	if got, want := cleanup(), "pilotwire gateway: nothing to clean up (no table inet pilotwire)\n"; got != want {
		t.Errorf("second --cleanup said %q, want %q", got, want)
	}
}

// TestGatewayEnforceFlags: --enforce reads the allowlist before anything
// starts and says what it holds; a bad line is named by file and line.
func TestGatewayEnforceFlags(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "allow.txt"), filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(good, []byte("ztd.dds.microsoft.com\n*.windowsupdate.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("ztd.dds.microsoft.com\nnot a host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The interfaces do not exist: the gateway stops there, after the list.
	args := func(list string) []string {
		return []string{"--store", filepath.Join(dir, "gw.db"), "gateway", "--lan", "pwnone0", "--wan", "pwnone1", "--enforce", list}
	}
	var stderr bytes.Buffer
	err := run(context.Background(), args(good), io.Discard, &stderr)
	if want := "pilotwire gateway: allowlist " + good + ": 2 rules (lines format)\n"; err == nil || !strings.Contains(stderr.String(), want) {
		t.Errorf("--enforce %s: %v, stderr %q; want the error of the missing interface after %q", good, err, stderr.String(), want)
	}
	err = run(context.Background(), args(bad), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), bad+":2: ") {
		t.Errorf("--enforce %s: %v, want an error naming %s:2", bad, err, bad)
	}
}

// TestGatewayPrintRulesEnforce: with a list to enforce, the table also
// drops the devices' UDP 443 (QUIC), which a list cannot judge.
func TestGatewayPrintRulesEnforce(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pilotwire gateway runs on Linux only")
	}
	list := filepath.Join(t.TempDir(), "allow.txt")
	if err := os.WriteFile(list, []byte("ztd.dds.microsoft.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"gateway", "--lan", "eth1", "--wan", "eth0", "--enforce", list, "--print-rules"}, &stdout, io.Discard)
	want := "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tiifname \"eth1\" udp dport 443 drop\n\t}\n"
	if err != nil || !strings.Contains(stdout.String(), want) {
		t.Errorf("--enforce --print-rules: %v\n%s\nwant a chain\n%s", err, stdout.String(), want)
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"gateway", "--lan", "eth1", "--wan", "eth0", "--print-rules"}, &stdout, io.Discard); err != nil || strings.Contains(stdout.String(), "chain forward") {
		t.Errorf("--print-rules without a list: %v\n%s", err, stdout.String())
	}
}

//go:build linux

// Command gateway measures pilotwire gateway between network namespaces it
// makes, side by side with plain routing between the same namespaces and
// with a reference relay:
//
//	device dev0 10.77.0.2 ── lan0 10.77.0.1 [gateway] wan0 10.88.0.1 ── up0 10.88.0.2 [internet]
//
// All three ways through the gateway namespace are there at once, told
// apart by the internet server's port (each listens in three pairs):
// pilotwire gateway (built from this tree, recording into a temporary
// SQLite store, no page) takes the device's TCP on tputPort and setupPort
// with its own rules, relays it and answers DNS with its recording
// forwarder; the bench's own rules (benchRules) leave the plain ports
// untracked, so the kernel routes them as with no firewall at all, and
// give the reference ports to the reference relay (reference.go): the
// least a user-space relay can do (accept, original destination, dial,
// splice both ways, nothing recorded), a floor for any relay on this
// machine. Figures, each with its ratio to plain:
//
//   - TCP throughput device ← internet: one connection (and -streams
//     at once) on which the device asks (a line, as a download's request)
//     and the internet's server then writes for -duration, MB/s as the
//     device reads it (until 2026-12-05 the server wrote without being
//     asked: a server-speaks-first protocol, which the gateway held for
//     its one-second wait for the client's first bytes, a third of a
//     3 s run); and one connection again with the device's
//     link limited to -link-rate (a token bucket on the gateway's LAN
//     side, for all three), as a real NIC limits it: over veth alone,
//     with every process on the same two CPUs, the figure is the CPU's;
//     plain, reference and pilotwire in turn in every repetition;
//   - connection setup: -setups fresh connections to each way, taking
//     them in turn (plain, reference, pilotwire, plain, …) with a
//     millisecond between one's close and the next dial, so that the
//     machine's moods fall on all alike, each from the dial to the first
//     byte of the server's answer to a line the device sends (through a
//     relay: the accept, the peek of the first bytes, the relay's own
//     connection to the server, the relay), p50 and p99;
//   - DNS: -dns-clients clients asking as fast as they are answered for
//     -dns-duration, straight to the internet's DNS server (plain) and
//     through the gateway's forwarder, which records every query; the
//     flows stored are counted afterwards.
//
// Throughput and setup are measured -reps times; medians are reported. It
// needs root (namespaces), ip and nft, and removes its namespaces on exit,
// also after an error or Ctrl-C.
//
//	go run ./bench/gateway                  # about 2 minutes
//	go run ./bench/gateway -quick           # about 40 s
//	go run ./bench/gateway -cpuprofile /tmp/gw.pprof   # also profile pilotwire's throughput runs
package main

import (
	"github.com/pilotwire/pilotwire/internal/procstat"

	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

const (
	devAddr  = "10.77.0.2"
	lanAddr  = "10.77.0.1"
	wanAddr  = "10.88.0.1"
	inetAddr = "10.88.0.2"

	tputPort  = 5001 // the internet writes into every connection until it closes
	setupPort = 5002 // the internet answers each line with a line
	answerIP  = "198.18.0.1"

	setupPause = time.Millisecond // between one setup's close and the next dial
	queryName  = "enterpriseregistration.windows.net."
)

func main() {
	role := flag.String("role", "", "internal: the role of a helper process (server, client)")
	quick := flag.Bool("quick", false, "shorter runs")
	reps := flag.Int("reps", 3, "repetitions of throughput and setup, plain and gateway in turn")
	duration := flag.Duration("duration", 5*time.Second, "length of one throughput run")
	streams := flag.Int("streams", 4, "connections of the parallel throughput run")
	setups := flag.Int("setups", 2000, "connections of one setup run")
	dnsClients := flag.Int("dns-clients", 32, "DNS clients at once")
	dnsDuration := flag.Duration("dns-duration", 5*time.Second, "length of the DNS run")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of pilotwire during the first gateway run of -profile to `FILE` (a build with pprof added by go build -overlay)")
	linkRate := flag.String("link-rate", "1gbit", "the device link's rate for the limited throughput run (tc tbf rate); empty: no such run")
	shapeWAN := flag.Bool("shape-wan", false, "limit the internet's side of the link (up0) instead of the device's (lan0) for the limited run")
	gomaxprocs := flag.Int("pilotwire-gomaxprocs", 0, "run pilotwire and the reference relay with GOMAXPROCS=`N` (0: the default)")
	profile := flag.String("profile", "tput", "what -cpuprofile profiles: tput (the 1-connection throughput run), setup or dns")
	reference := flag.Bool("reference", true, "also measure the reference relay (the least a user-space relay does) for throughput and setup")
	// Flags of the client role.
	mode := flag.String("mode", "", "internal: client mode (tput, setup, dns)")
	target := flag.String("target", "", "internal: client target host:port")
	flag.Parse()
	if *quick {
		*reps, *duration, *setups, *dnsDuration = 1, 3*time.Second, 1000, 3*time.Second
	}
	var err error
	switch *role {
	case "":
		err = run(*reps, *duration, *streams, *setups, *dnsClients, *dnsDuration, *cpuprofile, *profile, *linkRate, *shapeWAN, *gomaxprocs, *reference)
	case "server":
		err = serve()
	case "relay":
		err = relay()
	case "client":
		err = client(*mode, *target, *duration, *streams, *setups, *dnsClients)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/gateway:", err)
		os.Exit(1)
	}
}

// lab is the three namespaces.
type lab struct {
	dev, gw, inet string
	self          string // this program, to run helpers
	dir           string
}

func sh(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (l *lab) in(ns string, args ...string) (string, error) {
	return sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

func newLab(dir string) (*lab, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	id := strconv.Itoa(os.Getpid())
	l := &lab{dev: "pwbdev" + id, gw: "pwbgw" + id, inet: "pwbinet" + id, self: self, dir: dir}
	steps := [][]string{
		{"ip", "netns", "add", l.dev}, {"ip", "netns", "add", l.gw}, {"ip", "netns", "add", l.inet},
		{"ip", "link", "add", "dev0", "netns", l.dev, "type", "veth", "peer", "name", "lan0", "netns", l.gw},
		{"ip", "link", "add", "wan0", "netns", l.gw, "type", "veth", "peer", "name", "up0", "netns", l.inet},
	}
	for _, s := range steps {
		if _, err := sh(s...); err != nil {
			return l, err
		}
	}
	for _, a := range []struct{ ns, ifc, addr string }{
		{l.dev, "dev0", devAddr}, {l.gw, "lan0", lanAddr}, {l.gw, "wan0", wanAddr}, {l.inet, "up0", inetAddr},
	} {
		for _, s := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			{"ip", "addr", "add", a.addr + "/24", "dev", a.ifc},
			{"ip", "link", "set", a.ifc, "up"},
		} {
			if _, err := l.in(a.ns, s...); err != nil && !strings.Contains(err.Error(), "File exists") {
				return l, err
			}
		}
	}
	for _, s := range []struct{ ns, cmd string }{
		{l.dev, "ip route add default via " + lanAddr},
		{l.gw, "ip route add default via " + inetAddr},
		// Plain routing needs the way back; through the gateway, its
		// masquerade and its own connections make it unused.
		{l.inet, "ip route add 10.77.0.0/24 via " + wanAddr},
		{l.gw, "sysctl -qw net.ipv4.ip_forward=1"},
	} {
		if _, err := l.in(s.ns, strings.Fields(s.cmd)...); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (l *lab) close() {
	for _, ns := range []string{l.dev, l.gw, l.inet} {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// proc is a helper or pilotwire running in a namespace.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

// start runs args in ns and waits for a first line of output that starts
// with ready.
func (l *lab) start(ns, ready string, env []string, args ...string) (*proc, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, lines: make(chan string, 100), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case line := <-p.lines:
		if !strings.HasPrefix(line, ready) {
			p.stop()
			return nil, fmt.Errorf("%s said %q first", args[0], line)
		}
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready", strings.Join(args, " "))
	case <-time.After(20 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s not ready within 20 s", args[0])
	}
	return p, nil
}

// stop ends it with SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cpu is the process's user+system CPU time so far.
func (p *proc) cpu() time.Duration { return procstat.CPU(p.cmd.Process.Pid) }

// result is what a client run measured.
type result struct {
	MBps                   float64 `json:",omitempty"`
	P50, P99               time.Duration
	Count                  int64 // setups done or queries answered
	Lost                   int64 // queries unanswered
	Seconds                float64
	QPS                    float64       `json:",omitempty"`
	PilotwireCPU           time.Duration `json:"-"`
	PilotwireCPUPerSeconds float64       `json:"-"`
}

func (l *lab) measure(mode, target string, duration time.Duration, streams, setups, clients int) (result, error) {
	out, err := l.in(l.dev, l.self, "-role", "client", "-mode", mode, "-target", target,
		"-duration", duration.String(), "-streams", strconv.Itoa(streams), "-setups", strconv.Itoa(setups), "-dns-clients", strconv.Itoa(clients))
	if err != nil {
		return result{}, err
	}
	var r result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return result{}, fmt.Errorf("client said %q: %w", out, err)
	}
	return r, nil
}

func run(reps int, duration time.Duration, streams, setups, dnsClients int, dnsDuration time.Duration, cpuprofile, profile, linkRate string, shapeWAN bool, gomaxprocs int, reference bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it makes network namespaces")
	}
	for _, tool := range []string{"ip", "nft", "tc", "go", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed", tool)
		}
	}
	dir, err := os.MkdirTemp("", "pw-bench-gateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pilotwire")
	fmt.Println("building pilotwire …")
	if _, err := sh("go", "build", "-o", bin, "./cmd/pilotwire"); err != nil {
		return err
	}
	if cpuprofile != "" {
		overlay := filepath.Join(dir, "overlay.json")
		root, _ := os.Getwd()
		b, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, "cmd/pilotwire/zz_bench_pprof.go"): filepath.Join(root, "bench/proxy/pprof.go.in")}})
		if err := os.WriteFile(overlay, b, 0o644); err != nil {
			return err
		}
		if _, err := sh("go", "build", "-overlay", overlay, "-o", bin, "./cmd/pilotwire"); err != nil {
			return err
		}
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	l, err := newLab(dir)
	defer l.close()
	if err != nil {
		return err
	}
	go func() {
		<-sigs
		l.close() // Ctrl-C: the namespaces go even mid-run
		os.Exit(130)
	}()
	server, err := l.start(l.inet, "ready", nil, l.self, "-role", "server")
	if err != nil {
		return err
	}
	defer server.stop()

	store := filepath.Join(dir, "gw.db")
	var procsEnv []string // for pilotwire and the reference relay alike
	if gomaxprocs > 0 {
		procsEnv = append(procsEnv, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
	}
	startGateway := func() (*proc, error) {
		env := slices.Clone(procsEnv)
		if cpuprofile != "" {
			env = append(env, "PILOTWIRE_BENCH_PPROF=127.0.0.1:6060")
		}
		return l.start(l.gw, "pilotwire gateway: devices on lan0", env, bin, "--store", store, "gateway",
			"--lan", "lan0", "--wan", "wan0", "--dns-upstream", inetAddr+":53", "--ui", "off")
	}

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("bench/gateway %s, %d CPUs, load %s", time.Now().Format("2006-01-02 15:04"), numCPU(), load)

	// Plain routing, the reference relay and pilotwire run side by side,
	// told apart by the server's port: pilotwire's rules take every port
	// (tputPort, setupPort), the bench's own rules leave the plain ports
	// untracked and give the reference ports to the reference relay first.
	rules := filepath.Join(dir, "bench.nft")
	if err := os.WriteFile(rules, []byte(benchRules), 0o644); err != nil {
		return err
	}
	if _, err := l.in(l.gw, "nft", "-f", rules); err != nil {
		return err
	}
	var routes = []route{{"plain", plainOffset}, {"gateway", 0}}
	if reference {
		ref, err := l.start(l.gw, "ready", procsEnv, l.self, "-role", "relay")
		if err != nil {
			return err
		}
		defer ref.stop()
		routes = []route{{"plain", plainOffset}, {"reference", referenceOffset}, {"gateway", 0}}
	}
	gw, err := startGateway()
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			gw.stop()
		}
	}()
	byRoute := func() map[string][]result { return map[string][]result{} }
	tput1, tputN, tputLink, setup := byRoute(), byRoute(), byRoute(), byRoute()
	target := func(port int, r route) string {
		return net.JoinHostPort(inetAddr, strconv.Itoa(port+r.offset))
	}
	// limited measures one connection with the device's link at linkRate.
	limited := func(r route) (result, error) {
		ns, dev := l.gw, "lan0"
		if shapeWAN {
			ns, dev = l.inet, "up0"
		}
		if _, err := l.in(ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", linkRate, "burst", "256kb", "latency", "20ms"); err != nil {
			return result{}, err
		}
		defer l.in(ns, "tc", "qdisc", "del", "dev", dev, "root")
		return l.measure("tput", target(tputPort, r), duration, 1, 0, 0)
	}
	var gwCPU []float64 // pilotwire's CPU seconds per second of the 1-stream run
	for rep := 0; rep < reps; rep++ {
		fmt.Printf("rep %d/%d: throughput", rep+1, reps)
		for _, rt := range routes {
			fmt.Printf(" %s …", rt.name)
			var prof chan error
			if cpuprofile != "" && rep == 0 && profile == "tput" && rt.name == "gateway" {
				prof = l.profile(cpuprofile, duration-time.Second)
			}
			c0 := gw.cpu()
			r, err := l.measure("tput", target(tputPort, rt), duration, 1, 0, 0)
			if err != nil {
				return err
			}
			if rt.name == "gateway" {
				gwCPU = append(gwCPU, (gw.cpu()-c0).Seconds()/r.Seconds)
			}
			if prof != nil {
				if err := <-prof; err != nil {
					fmt.Fprintln(os.Stderr, "cpu profile:", err)
				}
			}
			tput1[rt.name] = append(tput1[rt.name], r)
			if r, err = l.measure("tput", target(tputPort, rt), duration, streams, 0, 0); err != nil {
				return err
			}
			tputN[rt.name] = append(tputN[rt.name], r)
			if linkRate != "" {
				if r, err = limited(rt); err != nil {
					return err
				}
				tputLink[rt.name] = append(tputLink[rt.name], r)
			}
		}
		fmt.Printf(" setup (interleaved) …")
		var prof chan error
		if cpuprofile != "" && rep == 0 && profile == "setup" {
			prof = l.profile(cpuprofile, 2*time.Second)
		}
		var targets []string
		for _, rt := range routes {
			targets = append(targets, target(setupPort, rt))
		}
		rs, err := l.measureSetups(targets, setups)
		if err != nil {
			return err
		}
		for i, rt := range routes {
			setup[rt.name] = append(setup[rt.name], rs[i])
		}
		if prof != nil {
			if err := <-prof; err != nil {
				fmt.Fprintln(os.Stderr, "cpu profile:", err)
			}
		}
		fmt.Println(" done")
	}
	gw.stop()
	stopped = true

	fmt.Printf("DNS: plain …")
	dnsPlain, err := l.measure("dns", inetAddr+":53", dnsDuration, 0, 0, dnsClients)
	if err != nil {
		return err
	}
	if err := os.Remove(store); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Printf(" gateway …")
	gw, err = startGateway()
	if err != nil {
		return err
	}
	var prof chan error
	if cpuprofile != "" && profile == "dns" {
		prof = l.profile(cpuprofile, dnsDuration-time.Second)
	}
	c0 := gw.cpu()
	dnsGW, err := l.measure("dns", lanAddr+":53", dnsDuration, 0, 0, dnsClients)
	if prof != nil {
		if err := <-prof; err != nil {
			fmt.Fprintln(os.Stderr, "cpu profile:", err)
		}
	}
	dnsCPU := gw.cpu() - c0
	gw.stop()
	if err != nil {
		return err
	}
	stored, err := countDNSFlows(bin, store)
	if err != nil {
		return err
	}
	fmt.Println(" done")
	load, _ = os.ReadFile("/proc/loadavg")

	med := func(rs []result, f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	mbps := func(r result) float64 { return r.MBps }
	p50 := func(r result) float64 { return float64(r.P50) / 1e3 }
	p99 := func(r result) float64 { return float64(r.P99) / 1e3 }
	all := func(rs []result, f func(result) float64, format string) string {
		var s []string
		for _, r := range rs {
			s = append(s, fmt.Sprintf(format, f(r)))
		}
		return strings.Join(s, " ")
	}
	fmt.Printf("\n%-44s %12s %12s %8s", "", "plain", "gateway", "ratio")
	if reference {
		fmt.Printf(" %12s %8s", "reference", "ratio")
	}
	fmt.Println()
	// row prints plain, pilotwire and, when measured, the reference relay,
	// each with its ratio to plain.
	row := func(name string, by map[string][]result, f func(result) float64, format string) {
		plain, gw := med(by["plain"], f), med(by["gateway"], f)
		fmt.Printf("%-44s %12s %12s %8.2f", name, fmt.Sprintf(format, plain), fmt.Sprintf(format, gw), gw/plain)
		if rs := by["reference"]; len(rs) > 0 {
			ref := med(rs, f)
			fmt.Printf(" %12s %8.2f", fmt.Sprintf(format, ref), ref/plain)
		}
		fmt.Println()
	}
	t1p, t1g := med(tput1["plain"], mbps), med(tput1["gateway"], mbps)
	row("TCP throughput, 1 connection, MB/s", tput1, mbps, "%.0f")
	row(fmt.Sprintf("TCP throughput, %d connections, MB/s", streams), tputN, mbps, "%.0f")
	if linkRate != "" {
		row("TCP throughput, 1 connection, "+linkRate+" link, MB/s", tputLink, mbps, "%.1f")
	}
	sp, sg := med(setup["plain"], p50), med(setup["gateway"], p50)
	row("connection setup p50, µs", setup, p50, "%.0f")
	row("connection setup p99, µs", setup, p99, "%.0f")
	qps := func(r result) float64 { return r.QPS }
	dns := map[string][]result{"plain": {dnsPlain}, "gateway": {dnsGW}}
	row("DNS queries answered per second", dns, qps, "%.0f")
	row("DNS p50, µs", dns, p50, "%.0f")
	fmt.Printf("DNS: %d answered through the gateway (%d unanswered), %d DNS flows stored; pilotwire CPU %.1f µs per query\n",
		dnsGW.Count, dnsGW.Lost, stored, float64(dnsCPU.Microseconds())/float64(max(dnsGW.Count, 1)))
	fmt.Printf("pilotwire's CPU during the 1-connection runs, CPU-seconds per second:")
	for _, c := range gwCPU {
		fmt.Printf(" %.2f", c)
	}
	fmt.Println()
	fmt.Println("\ntargets (issue 16):")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET"
	}
	fmt.Printf("  throughput ≥ 0.9× plain:            %.2f×  %s\n", t1g/t1p, verdict(t1g >= 0.9*t1p))
	if linkRate != "" {
		lp, lg := med(tputLink["plain"], mbps), med(tputLink["gateway"], mbps)
		fmt.Printf("    with a %s device link:         %.2f×  %s\n", linkRate, lg/lp, verdict(lg >= 0.9*lp))
	}
	fmt.Printf("  setup p50 ≤ plain + 150 µs:          +%.0f µs  %s\n", sg-sp, verdict(sg-sp <= 150))
	if reference {
		fmt.Printf("  the reference relay, a floor for any relay here: throughput %.2f×, setup +%.0f µs (pilotwire %+.0f µs beside it)\n",
			med(tput1["reference"], mbps)/t1p, med(setup["reference"], p50)-sp, sg-med(setup["reference"], p50))
	}
	fmt.Printf("  DNS 20,000 queries/s recorded:       %.0f/s, %d of %d stored  %s\n", dnsGW.QPS, stored, dnsGW.Count,
		verdict(dnsGW.QPS >= 20000 && stored >= dnsGW.Count))
	fmt.Println("\nall runs:")
	for _, rt := range routes {
		fmt.Printf("  %-9s throughput 1: %s; %d: %s", rt.name, all(tput1[rt.name], mbps, "%.0f"), streams, all(tputN[rt.name], mbps, "%.0f"))
		if linkRate != "" {
			fmt.Printf("; %s: %s", linkRate, all(tputLink[rt.name], mbps, "%.1f"))
		}
		fmt.Printf("; setup p50 %s\n", all(setup[rt.name], p50, "%.0f"))
	}
	fmt.Printf("load at the end: %s", load)
	return nil
}

// profile takes a CPU profile of pilotwire (the pprof build) for d into
// file; the channel says when it is written.
func (l *lab) profile(file string, d time.Duration) chan error {
	done := make(chan error, 1)
	go func() {
		_, err := l.in(l.gw, "curl", "-sS", "-o", file, fmt.Sprintf("http://127.0.0.1:6060/debug/pprof/profile?seconds=%d", max(int(d/time.Second), 1)))
		done <- err
	}()
	return done
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "\nprocessor") + 1
}

// countDNSFlows counts the DNS flows in the store, through pilotwire
// flows --json.
func countDNSFlows(bin, store string) (int64, error) {
	cmd := exec.Command(bin, "--store", store, "flows", "--json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var n int64
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var f struct{ Kind string }
		if json.Unmarshal(sc.Bytes(), &f) == nil && strings.EqualFold(f.Kind, "dns") {
			n++
		}
	}
	if err := cmd.Wait(); err != nil {
		return n, fmt.Errorf("pilotwire flows: %w", err)
	}
	return n, nil
}

// serve is the internet: a server that writes into every connection, one
// that answers lines, and a DNS server, until SIGTERM.
func serve() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	for _, offset := range []int{0, plainOffset, referenceOffset} {
		tput, err := net.Listen("tcp4", net.JoinHostPort(inetAddr, strconv.Itoa(tputPort+offset)))
		if err != nil {
			return err
		}
		defer tput.Close()
		go acceptAll(tput, func(c net.Conn) {
			// A download, as a device makes one: it asks first (a line).
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				return
			}
			buf := make([]byte, 256<<10)
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		})
		lines, err := net.Listen("tcp4", net.JoinHostPort(inetAddr, strconv.Itoa(setupPort+offset)))
		if err != nil {
			return err
		}
		defer lines.Close()
		go acceptAll(lines, func(c net.Conn) {
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		})
	}
	srv := &dns.Server{Addr: inetAddr + ":53", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.ParseIP(answerIP)})
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ListenAndServe() }()
	<-started
	defer srv.Shutdown()
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

func acceptAll(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// client runs one measurement from the device and prints its result as
// JSON.
func client(mode, target string, duration time.Duration, streams, setups, clients int) error {
	var r result
	var err error
	switch mode {
	case "tput":
		r, err = throughput(target, duration, streams)
	case "setup":
		return setupTimes(target, setups)
	case "dns":
		r, err = dnsLoad(target, duration, clients)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// throughput reads streams connections for duration, from each one's
// first byte.
func throughput(target string, duration time.Duration, streams int) (result, error) {
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	start := time.Now()
	deadline := start.Add(duration)
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp4", target)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if _, err := io.WriteString(c, "GET /stream\n"); err != nil {
				errs <- err
				return
			}
			_ = c.SetReadDeadline(deadline)
			buf := make([]byte, 256<<10)
			for {
				n, err := c.Read(buf)
				total.Add(int64(n))
				if err != nil {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						errs <- err
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	secs := time.Since(start).Seconds()
	return result{MBps: float64(total.Load()) / secs / 1e6, Seconds: secs, Count: total.Load()}, nil
}

// setupTimes opens n connections to each of targets (comma-separated),
// one after the other and taking the targets in turn, so that the machine's
// moods fall on every target alike: dial, a line out, its echo back. It
// prints the results as a JSON array, one for each target.
func setupTimes(targets string, n int) error {
	list := strings.Split(targets, ",")
	took := make([][]time.Duration, len(list))
	line := []byte("hello\n")
	buf := make([]byte, 64)
	for range n {
		for i, target := range list {
			t0 := time.Now()
			c, err := net.Dial("tcp4", target)
			if err != nil {
				return err
			}
			if _, err := c.Write(line); err != nil {
				c.Close()
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, buf[:len(line)]); err != nil {
				c.Close()
				return fmt.Errorf("setup to %s: %w", target, err)
			}
			took[i] = append(took[i], time.Since(t0))
			c.Close()
			// What a connection leaves to do (the relays' closing, their
			// records) is not the next one's to wait for.
			time.Sleep(setupPause)
		}
	}
	rs := make([]result, len(list))
	for i, t := range took {
		slices.Sort(t)
		rs[i] = result{P50: t[len(t)/2], P99: t[len(t)*99/100], Count: int64(n)}
	}
	return json.NewEncoder(os.Stdout).Encode(rs)
}

// measureSetups runs setupTimes from the device.
func (l *lab) measureSetups(targets []string, n int) ([]result, error) {
	out, err := l.in(l.dev, l.self, "-role", "client", "-mode", "setup", "-target", strings.Join(targets, ","), "-setups", strconv.Itoa(n))
	if err != nil {
		return nil, err
	}
	var rs []result
	if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != len(targets) {
		return nil, fmt.Errorf("setup client said %q (%v)", out, err)
	}
	return rs, nil
}

// dnsLoad has clients ask target for queryName's A record as fast as
// they are answered, for duration.
func dnsLoad(target string, duration time.Duration, clients int) (result, error) {
	m := new(dns.Msg)
	m.SetQuestion(queryName, dns.TypeA)
	query, err := m.Pack()
	if err != nil {
		return result{}, err
	}
	if _, err := netip.ParseAddrPort(target); err != nil {
		return result{}, err
	}
	var answered, lost atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(duration)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp4", target)
			if err != nil {
				lost.Add(1)
				return
			}
			defer c.Close()
			q := append([]byte(nil), query...)
			buf := make([]byte, 1500)
			for id := uint16(i * 1000); time.Now().Before(end); id++ {
				binary.BigEndian.PutUint16(q, id)
				t0 := time.Now()
				if _, err := c.Write(q); err != nil {
					lost.Add(1)
					continue
				}
				_ = c.SetReadDeadline(t0.Add(time.Second))
				for {
					n, err := c.Read(buf)
					if err != nil {
						lost.Add(1)
						break
					}
					if n >= 2 && binary.BigEndian.Uint16(buf) == id {
						answered.Add(1)
						lat[i] = append(lat[i], time.Since(t0))
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return result{}, errors.New("no DNS answer at all")
	}
	slices.Sort(all)
	return result{QPS: float64(answered.Load()) / secs, Count: answered.Load(), Lost: lost.Load(), Seconds: secs,
		P50: all[len(all)/2], P99: all[len(all)*99/100]}, nil
}

// Command proxy-bench measures pilotwire's forward proxy side by side with
// a direct connection, Squid and tinyproxy, on loopback only, in one run.
//
// bench/proxy/run.sh builds and runs it; see bench/README.md. It starts its
// own upstream servers (in a child process: "proxy-bench serve"), starts each
// proxy in a temporary directory with a minimal configuration, and measures:
// 1 GiB downloads through a CONNECT tunnel (TLS) and as plain proxied HTTP,
// small GETs from 64 keep-alive clients and from one, and the memory and file
// descriptors each idle CONNECT tunnel costs. Noise between runs on a small
// machine is ±15–30%, so every figure is compared within the run, and each
// measurement is repeated (interleaved across proxies) and its median kept.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		err = serveMain(ctx)
	} else {
		err = runMain(ctx, os.Args[1:])
	}
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "proxy-bench: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	pilotwire, pprofBin, transportBin string
	squid, tinyproxy                  string
	pilotwireArgs                     string
	out, version                      string
	reps, dlReps, clients, tunnels    int
	parallel                          int
	size                              int64
	loadDur, latDur, timeout          time.Duration
	skip                              string
}

func runMain(ctx context.Context, args []string) error {
	var c config
	fs := flag.NewFlagSet("proxy-bench", flag.ContinueOnError)
	fs.StringVar(&c.pilotwire, "pilotwire", "", "pilotwire binary (empty: leave pilotwire out)")
	fs.StringVar(&c.pilotwireArgs, "pilotwire-args", "", "extra arguments for \"pilotwire proxy\", space separated")
	fs.StringVar(&c.pprofBin, "pprof-bin", "", "pilotwire built with the bench pprof listener; when set, profile it under the 64-client load")
	fs.StringVar(&c.transportBin, "pilotwire-transport", "", "pilotwire built with its direct plain-HTTP path left out (transportonly.go.in); when set, measured beside pilotwire")
	fs.StringVar(&c.squid, "squid", "", "squid binary (empty: leave Squid out)")
	fs.StringVar(&c.tinyproxy, "tinyproxy", "", "tinyproxy binary (empty: leave tinyproxy out)")
	fs.StringVar(&c.out, "out", "", "also write the report to this file")
	fs.StringVar(&c.version, "versions", "", "free text naming the versions measured, printed in the header")
	fs.IntVar(&c.reps, "reps", 3, "repetitions of each load and latency measurement (median kept)")
	fs.IntVar(&c.dlReps, "download-reps", 5, "repetitions of each 1 GiB download (median kept; they are short and the noisiest)")
	fs.IntVar(&c.clients, "clients", 64, "concurrent keep-alive clients for the small-GET load")
	fs.IntVar(&c.tunnels, "tunnels", 9000, "idle CONNECT tunnels to hold open per proxy")
	fs.IntVar(&c.parallel, "tunnel-parallel", 128, "tunnels being opened at once")
	fs.Int64Var(&c.size, "size", 1<<30, "bytes per download")
	fs.DurationVar(&c.loadDur, "load-time", 3*time.Second, "duration of each 64-client load run")
	fs.DurationVar(&c.latDur, "latency-time", 2*time.Second, "duration of each 1-client latency run")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up on one download after this long")
	fs.StringVar(&c.skip, "skip", "", "comma-separated measurements to skip: idle,connect,plain,load,latency,profile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.reps < 1 || c.dlReps < 1 || c.clients < 1 || c.tunnels < 0 || c.parallel < 1 || c.size < 1 {
		return errors.New("-reps, -download-reps, -clients, -tunnel-parallel and -size must be positive")
	}
	return run(ctx, c)
}

func (c config) skipped(what string) bool {
	return slices.Contains(strings.Split(c.skip, ","), what)
}

// bench is one run: the upstreams, the routes to them and what was measured.
type bench struct {
	cfg     config
	base    string
	up      ports
	routes  []route
	procs   []*proc
	missing map[string]string // route name → why it is not measured
	m       map[string]map[string][]float64
	idle    map[string]idleResult
	notes   []string
	profile string
	load    [2]string // 1-minute load average at the start and the end
}

type idleResult struct {
	opened        int
	before, after procStats
	err           error
}

func (b *bench) add(metric, route string, v float64) {
	if b.m[metric] == nil {
		b.m[metric] = map[string][]float64{}
	}
	b.m[metric][route] = append(b.m[metric][route], v)
}

func (b *bench) notef(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.notes = append(b.notes, s)
	fmt.Fprintln(os.Stderr, "  ! "+s)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func run(ctx context.Context, c config) error {
	started := time.Now()
	loadStart := loadAvg()
	base, err := os.MkdirTemp("", "pilotwire-bench-")
	if err != nil {
		return err
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return err
	}
	defer func() {
		// startTinyproxy may have put its directory on tmpfs, linked as base/shm.
		if shm, err := os.Readlink(filepath.Join(base, "shm")); err == nil {
			os.RemoveAll(shm)
		}
		os.RemoveAll(base)
	}()
	b := &bench{cfg: c, base: base, missing: map[string]string{}, m: map[string]map[string][]float64{}, idle: map[string]idleResult{}}
	defer func() {
		for _, p := range slices.Backward(b.procs) {
			p.stop()
		}
	}()

	stopUp, err := b.startUpstreams(ctx)
	if err != nil {
		return err
	}
	defer stopUp()
	b.startProxies(ctx)

	if !c.skipped("idle") && c.tunnels > 0 {
		b.measureIdle(ctx)
	}
	if !c.skipped("connect") {
		b.measureDownloads(ctx, true)
	}
	if !c.skipped("plain") {
		b.measureDownloads(ctx, false)
	}
	if !c.skipped("load") {
		b.measureLoad(ctx, c.clients, c.loadDur, "load")
	}
	if !c.skipped("latency") {
		b.measureLoad(ctx, 1, c.latDur, "lat")
	}
	if c.pprofBin != "" && !c.skipped("profile") {
		b.measureProfile(ctx)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.load = [2]string{loadStart, loadAvg()}
	report := b.report(started)
	fmt.Print(report)
	if c.out != "" {
		if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(c.out, []byte(report), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		fmt.Fprintf(os.Stderr, "report written to %s\n", c.out)
	}
	return nil
}

// startUpstreams runs "proxy-bench serve" as a child process and reads its ports.
func (b *bench) startUpstreams(ctx context.Context) (func(), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "serve")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start upstreams: %w", err)
	}
	stopUp := func() { stdin.Close(); cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err == nil {
		_, err = fmt.Sscanf(line, "plain=%d tls=%d echo=%d", &b.up.plain, &b.up.tls, &b.up.echo)
	}
	if err != nil {
		stopUp()
		return nil, fmt.Errorf("upstreams did not report their ports: %q: %w", line, err)
	}
	b.notes = append(b.notes, fmt.Sprintf("upstreams (own process, pid %d): plain HTTP 127.0.0.1:%d, TLS 127.0.0.1:%d, echo 127.0.0.1:%d",
		cmd.Process.Pid, b.up.plain, b.up.tls, b.up.echo))
	return stopUp, nil
}

// routeOrder is the column order of the report.
var routeOrder = []string{"direct", "pilotwire", "pilotwire-norec", "pilotwire-transport", "squid", "tinyproxy"}

func (b *bench) startProxies(ctx context.Context) {
	c := b.cfg
	b.routes = append(b.routes, route{name: "direct"})
	type starter struct {
		name, bin string
		start     func() (*proc, string, error)
	}
	extra := strings.Fields(c.pilotwireArgs)
	starters := []starter{
		{"pilotwire", c.pilotwire, func() (*proc, string, error) {
			return startPilotwire(ctx, c.pilotwire, b.base, "pilotwire", b.up, true, extra, nil)
		}},
		{"pilotwire-norec", c.pilotwire, func() (*proc, string, error) {
			return startPilotwire(ctx, c.pilotwire, b.base, "pilotwire-norec", b.up, false, extra, nil)
		}},
		{"pilotwire-transport", c.transportBin, func() (*proc, string, error) {
			return startPilotwire(ctx, c.transportBin, b.base, "pilotwire-transport", b.up, true, extra, nil)
		}},
		{"squid", c.squid, func() (*proc, string, error) { return startSquid(ctx, c.squid, b.base, 20000) }},
		{"tinyproxy", c.tinyproxy, func() (*proc, string, error) {
			return startTinyproxy(ctx, c.tinyproxy, b.base, b.up, c.tunnels+1000)
		}},
	}
	for _, s := range starters {
		if s.bin == "" {
			b.missing[s.name] = "no binary given"
			continue
		}
		p, addr, err := s.start()
		if err != nil {
			b.missing[s.name] = err.Error()
			progress("  ! %s not measured: %v", s.name, err)
			continue
		}
		b.procs = append(b.procs, p)
		r := route{name: s.name, proxy: addr, pid: p.pid()}
		if err := b.check(ctx, r); err != nil {
			b.missing[s.name] = "it does not proxy: " + err.Error()
			progress("  ! %s not measured: it does not proxy: %v", s.name, err)
			p.stop()
			continue
		}
		progress("%s: pid %d listening on %s", s.name, r.pid, addr)
		b.routes = append(b.routes, r)
	}
}

// check proves a route works: one small GET and one ping through a tunnel.
func (b *bench) check(ctx context.Context, r route) error {
	res := load(ctx, r, b.up, 1, 2*time.Second, 3)
	if res.reqs != 3 {
		return fmt.Errorf("small GET: %d of 3 answered: %v", res.reqs, res.firstErr)
	}
	conns, err := openIdle(ctx, r, b.up, 1, 1)
	for _, c := range conns {
		c.Close()
	}
	return err
}

// proxied are the routes through a proxy. The idle-tunnel test runs on
// both pilotwire processes so that they have the same history when their
// throughput is compared (recording on vs off).
func (b *bench) proxied() []route {
	var rs []route
	for _, r := range b.routes {
		if !r.direct() {
			rs = append(rs, r)
		}
	}
	return rs
}

func (b *bench) measureIdle(ctx context.Context) {
	for _, r := range b.proxied() {
		progress("idle tunnels: %d through %s", b.cfg.tunnels, r.name)
		sleep(ctx, time.Second)
		before, err := readProc(r.pid)
		if err != nil {
			b.notef("idle %s: %v", r.name, err)
			continue
		}
		t0 := time.Now()
		conns, err := openIdle(ctx, r, b.up, b.cfg.tunnels, b.cfg.parallel)
		opened := time.Since(t0)
		sleep(ctx, 2*time.Second) // let the proxy settle: goroutines park, buffers return
		after, perr := readProc(r.pid)
		if perr != nil {
			err = errors.Join(err, perr)
		}
		b.idle[r.name] = idleResult{opened: len(conns), before: before, after: after, err: err}
		progress("  %d open in %v; RSS %d → %d KiB, fds %d → %d", len(conns), opened.Round(time.Millisecond),
			before.rssKiB, after.rssKiB, before.fds, after.fds)
		if err != nil {
			b.notef("idle %s: stopped after %d tunnels: %v", r.name, len(conns), err)
		}
		for _, c := range conns {
			c.Close()
		}
		sleep(ctx, 2*time.Second) // let the proxy close its side before the next one
	}
}

func (b *bench) measureDownloads(ctx context.Context, tunnel bool) {
	kind, metric := "plain HTTP", "plain"
	if tunnel {
		kind, metric = "CONNECT (TLS)", "connect"
	}
	for rep := range b.cfg.dlReps {
		for _, r := range b.routes {
			if ctx.Err() != nil {
				return
			}
			before, _ := b.cpu(r)
			mbps, err := download(ctx, r, b.up, tunnel, b.cfg.size, b.cfg.timeout)
			if err != nil {
				b.notef("%s download %d via %s: %v", kind, rep+1, r.name, err)
				continue
			}
			b.add(metric, r.name, mbps)
			if after, ok := b.cpu(r); ok {
				b.add(metric+"-cpu", r.name, (after-before).Seconds()/(float64(b.cfg.size)/(1<<30)))
			}
			progress("%s %s run %d: %.0f MB/s", kind, r.name, rep+1, mbps)
		}
	}
}

func (b *bench) cpu(r route) (time.Duration, bool) {
	if r.pid == 0 {
		return 0, false
	}
	s, err := readProc(r.pid)
	return s.cpu, err == nil
}

func (b *bench) measureLoad(ctx context.Context, clients int, dur time.Duration, metric string) {
	for rep := range b.cfg.reps {
		for _, r := range b.routes {
			if ctx.Err() != nil {
				return
			}
			before, _ := b.cpu(r)
			res := load(ctx, r, b.up, clients, dur, 5_000_000)
			if res.reqs == 0 {
				b.notef("%d-client load via %s: no answers: %v", clients, r.name, res.firstErr)
				continue
			}
			if res.errs > 0 {
				b.notef("%d-client load via %s run %d: %d errors (first: %v)", clients, r.name, rep+1, res.errs, res.firstErr)
			}
			b.add(metric+"-rps", r.name, res.rps())
			b.add(metric+"-p50", r.name, float64(res.p50)/float64(time.Microsecond))
			b.add(metric+"-p99", r.name, float64(res.p99)/float64(time.Microsecond))
			if after, ok := b.cpu(r); ok {
				b.add(metric+"-cpu", r.name, float64(after-before)/float64(time.Microsecond)/float64(res.reqs))
			}
			progress("%d clients %s run %d: %.0f req/s, p50 %v, p99 %v, %d dials", clients, r.name, rep+1,
				res.rps(), res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.dials)
		}
	}
}

// measureProfile starts the pprof-enabled pilotwire build (recording on),
// puts the small-GET load on it and takes a CPU profile meanwhile.
func (b *bench) measureProfile(ctx context.Context) {
	pt, err := freePort()
	if err != nil {
		b.notef("profile: %v", err)
		return
	}
	paddr := net.JoinHostPort("127.0.0.1", fmt.Sprint(pt))
	p, addr, err := startPilotwire(ctx, b.cfg.pprofBin, b.base, "pilotwire-pprof", b.up, true, strings.Fields(b.cfg.pilotwireArgs),
		[]string{"PILOTWIRE_BENCH_PPROF=" + paddr})
	if err != nil {
		b.notef("profile: %v", err)
		return
	}
	defer p.stop()
	r := route{name: "pilotwire-pprof", proxy: addr, pid: p.pid()}
	progress("profiling pilotwire under %d-client small GETs and a CONNECT download", b.cfg.clients)
	dir := filepath.Dir(b.cfg.out)
	if b.cfg.out == "" {
		dir = b.base
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.notef("profile: %v", err)
		return
	}
	stamp := time.Now().UTC().Format("2006-01-02T1504")
	var tops []string
	for _, job := range []struct {
		name string
		work func()
	}{
		{"small GETs, " + fmt.Sprint(b.cfg.clients) + " clients", func() { load(ctx, r, b.up, b.cfg.clients, 6*time.Second, 5_000_000) }},
		{"CONNECT download", func() { download(ctx, r, b.up, true, 4*b.cfg.size, 3*b.cfg.timeout) }},
	} {
		file := filepath.Join(dir, "pilotwire-cpu-"+stamp+"-"+strings.Fields(job.name)[0]+".pprof")
		done := make(chan struct{})
		go func() { job.work(); close(done) }()
		sleep(ctx, 500*time.Millisecond)
		err := fetchProfile(ctx, paddr, 4, file)
		<-done
		if err != nil {
			b.notef("profile %s: %v", job.name, err)
			continue
		}
		for _, view := range [][]string{{"-top", "-nodecount=20"}, {"-top", "-cum", "-nodecount=30"}} {
			args := append([]string{"tool", "pprof"}, view...)
			out, err := exec.CommandContext(ctx, "go", append(args, b.cfg.pprofBin, file)...).Output()
			if err != nil {
				b.notef("go tool pprof %s: %v", file, err)
				break
			}
			tops = append(tops, fmt.Sprintf("--- %s, %s (%s)\n%s", job.name, strings.Join(view, " "), file, trimPprof(string(out))))
		}
	}
	if !b.cfg.skipped("idle") && b.cfg.tunnels > 0 {
		tops = append(tops, b.idleBreakdown(ctx, r, paddr))
	}
	b.profile = strings.Join(tops, "\n")
}

// idleBreakdown opens the idle tunnels through the pprof-enabled pilotwire
// and reads the Go runtime's own accounting, to show where their memory
// goes: goroutine stacks or heap, and how many goroutines each holds.
func (b *bench) idleBreakdown(ctx context.Context, r route, paddr string) string {
	stats := func() (map[string]int64, error) {
		heap, err := httpGet(ctx, paddr, "/debug/pprof/heap?debug=1")
		if err != nil {
			return nil, err
		}
		gr, err := httpGet(ctx, paddr, "/debug/pprof/goroutine?debug=1")
		if err != nil {
			return nil, err
		}
		m := map[string]int64{}
		for line := range strings.Lines(heap) {
			var k string
			var v int64
			if n, _ := fmt.Sscanf(strings.TrimPrefix(line, "# "), "%s = %d", &k, &v); n == 2 {
				m[k] = v
			}
		}
		var total int64
		fmt.Sscanf(gr, "goroutine profile: total %d", &total)
		m["Goroutines"] = total
		pr, err := readProc(r.pid)
		m["VmRSS"] = pr.rssKiB << 10
		m["fds"] = int64(pr.fds)
		for k, v := range fdKinds(r.pid) {
			m["fd:"+k] = int64(v)
		}
		return m, err
	}
	sleep(ctx, time.Second)
	before, err := stats()
	if err != nil {
		return fmt.Sprintf("--- idle tunnels: %v\n", err)
	}
	conns, err := openIdle(ctx, r, b.up, b.cfg.tunnels, b.cfg.parallel)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return fmt.Sprintf("--- idle tunnels: %d opened: %v\n", len(conns), err)
	}
	sleep(ctx, 2*time.Second)
	after, err := stats()
	if err != nil {
		return fmt.Sprintf("--- idle tunnels: %v\n", err)
	}
	n := float64(len(conns))
	var w strings.Builder
	fmt.Fprintf(&w, "--- where %d idle tunnels' memory goes (Go runtime accounting, per tunnel)\n", len(conns))
	for _, k := range []struct{ key, label string }{
		{"VmRSS", "RSS (kernel)"}, {"Stack", "goroutine stacks (StackInuse)"}, {"HeapInuse", "heap in use"},
		{"HeapAlloc", "heap live+garbage (HeapAlloc)"}, {"Sys", "runtime Sys"},
	} {
		fmt.Fprintf(&w, "  %-32s %7.2f KiB\n", k.label, float64(after[k.key]-before[k.key])/1024/n)
	}
	fmt.Fprintf(&w, "  %-32s %7.2f\n", "goroutines", float64(after["Goroutines"]-before["Goroutines"])/n)
	fmt.Fprintf(&w, "  %-32s %7.2f", "file descriptors", float64(after["fds"]-before["fds"])/n)
	var kinds []string
	for _, k := range []string{"socket", "pipe", "anon_inode", "file"} {
		if d := after["fd:"+k] - before["fd:"+k]; d != 0 {
			kinds = append(kinds, fmt.Sprintf("%s %+d", k, d))
		}
	}
	if len(kinds) > 0 {
		fmt.Fprintf(&w, "   (in all: %s)", strings.Join(kinds, ", "))
	}
	w.WriteString("\n")
	return w.String()
}

// httpGet fetches path from the loopback pprof listener at addr.
func httpGet(ctx context.Context, addr, path string) (string, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
	br := bufio.NewReader(c)
	h, err := readHead(br)
	if err != nil {
		return "", err
	}
	if h.status != 200 {
		return "", fmt.Errorf("GET %s: status %d", path, h.status)
	}
	body, err := io.ReadAll(chunkedOr(br, h))
	return string(body), err
}

func fetchProfile(ctx context.Context, addr string, secs int, file string) error {
	c, err := dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Duration(secs+10) * time.Second))
	fmt.Fprintf(c, "GET /debug/pprof/profile?seconds=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", secs, addr)
	br := bufio.NewReader(c)
	h, err := readHead(br)
	if err != nil {
		return err
	}
	if h.status != 200 {
		return fmt.Errorf("pprof: status %d", h.status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, chunkedOr(br, h)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func chunkedOr(br *bufio.Reader, h head) io.Reader {
	if h.chunked {
		return httputil.NewChunkedReader(br)
	}
	if h.length >= 0 {
		return io.LimitReader(br, h.length)
	}
	return br
}

func trimPprof(s string) string {
	var keep []string
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Type:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "")
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func hostLine() string {
	return fmt.Sprintf("%d CPUs, %s %s/%s", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// loadAvg is the 1-minute load average: other work on the machine during
// the run is the largest source of noise, so the report shows it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

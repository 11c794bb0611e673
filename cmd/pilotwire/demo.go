package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/check"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/scenario"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/sim"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/timeline"
	"github.com/pilotwire/pilotwire/internal/web"
)

const demoExamples = `  pilotwire demo                              # 3 devices play the seed's run at 20x (about a minute); open the page it prints
  pilotwire demo --devices 5 --speed 60
  pilotwire demo --scenario my-run.yaml       # a scenario of your own (pilotwire scenario from-session)
  pilotwire demo --slow office=2MiB           # a slow Office CDN: compare the runs with pilotwire diff

Everything runs on this machine: the proxy, the page, a stand-in internet answering as the
catalog's hosts, and the simulated devices (on 127.0.0.10 and up). Nothing leaves the machine.
The flows go to a temporary store unless --store is given.
`

func runDemo(ctx context.Context, g *globals, args []string) error {
	storeSet := false
	for _, a := range args {
		if a == "--store" || a == "-store" || len(a) > 8 && (a[:8] == "--store=" || a[:7] == "-store=") {
			storeSet = true
		}
	}
	if os.Getenv("PILOTWIRE_STORE") != "" {
		storeSet = true
	}
	fs := newFlagSet(g, "demo", "demo [flags]", demoExamples)
	var (
		ui      uiFlags
		devices int
		speed   float64
		scale   float64
		name    string
		reports bool
	)
	ui.register(fs, "the page's `ADDR`")
	fs.IntVar(&devices, "devices", 3, "how many simulated devices")
	fs.Float64Var(&speed, "speed", 20, "play the scenario this many times faster than it was captured")
	fs.Float64Var(&scale, "bytes", 1.0/64, "move this share of the scenario's bytes (1: all of them)")
	fs.StringVar(&name, "scenario", "user-driven", "a built-in scenario (pilotwire scenario list) or a scenario `FILE`")
	fs.BoolVar(&reports, "reports", true, "print each device's report at the end")
	var slow multiFlag
	fs.Var(&slow, "slow", "slow a service's content down: `SERVICE=RATE` per second, e.g. office=2MiB (repeatable)")
	pos, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("demo: unexpected argument %q", pos[0])
	case devices < 1 || devices > 200:
		return usagef("demo: --devices %d: want 1 to 200", devices)
	case speed <= 0 || speed > 1000:
		return usagef("demo: --speed %g: want more than 0 and at most 1000", speed)
	case scale <= 0 || scale > 1:
		return usagef("demo: --bytes %g: want more than 0 and at most 1", scale)
	}
	cat, err := loadCatalog(g)
	if err != nil {
		return err
	}
	var limits []scenario.Limit
	for _, v := range slow {
		id, rate, ok := strings.Cut(v, "=")
		n, err := scenario.ParseBytes(strings.TrimSuffix(rate, "/s"))
		if _, known := cat.Service(id); !ok || !known || err != nil || n <= 0 {
			return usagef("demo: --slow %q: want SERVICE=RATE with a catalog service (pilotwire endpoints services) and a rate like 2MiB", v)
		}
		l := scenario.Limit{BytesPerSecond: float64(n)}
		for _, e := range cat.Entries() {
			if e.Service == id {
				l.Hosts = append(l.Hosts, e.HostPattern())
			}
		}
		limits = append(limits, l)
	}
	if ui.addr == "" {
		return usagef("demo: --ui: the demo is shown on its page; give it an address, e.g. 127.0.0.1:8081")
	}
	token, err := ui.token("demo")
	if err != nil {
		return err
	}
	sc, err := scenario.Load(name, os.ReadFile)
	if err != nil {
		return err
	}
	if !storeSet {
		dir, err := os.MkdirTemp("", "pilotwire-demo")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		g.store = filepath.Join(dir, "demo.db")
	}

	in, err := sim.New()
	if err != nil {
		return err
	}
	defer in.Close()
	if err := scenario.Stage(in, sc); err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, g.store)
	if err != nil {
		return err
	}
	defer st.Close()
	hub := live.NewHub(maxViewers, 0)
	rec := flow.NewRecorder(st, flow.RecorderOptions{Publish: hub.Publish})
	addrs := make([]netip.Addr, devices)
	labels := map[netip.Addr]string{}
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + i)})
		labels[addrs[i]] = fmt.Sprintf("%s-%02d", firstNonEmpty(sc.Device, "demo-vm"), i+1)
	}
	p := &proxy.Proxy{Resolve: in.Resolve, Dial: in.Dial, Record: rec.Record, Devices: labels, ProgressEvery: 500 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rec.Close()
		return err
	}
	go p.Serve(ln)
	page, err := web.New(web.Options{Store: st, Hub: hub, Catalog: cat, Token: token, Source: "demo: " + sc.Name, Version: version, Mode: "proxy",
		// The demo's check reaches its stand-in internet, as its devices do.
		Check: pageCheck(cat, func(o *check.Options) { o.Resolve, o.Dial, o.RootCAs = in.Resolve, in.Dial, in.CertPool() }),
		Status: func() web.Status {
			s, h := p.Stats(), rec.Health()
			return web.Status{Proxy: &web.ProxyStatus{OpenConns: s.OpenConns, OpenTunnels: s.OpenTunnels, Requests: s.Requests,
				UptimeSeconds: time.Since(s.Started).Seconds()}, Recording: &web.RecordingStatus{OK: h.Recording, Text: h.String()}}
		}})
	if err != nil {
		rec.Close()
		return err
	}
	uiLn, err := ui.listen("demo")
	if err != nil {
		rec.Close()
		return err
	}
	srv := pageServer(page)
	go srv.Serve(uiLn)
	defer srv.Close()

	last := sc.Steps[len(sc.Steps)-1].At
	fmt.Fprintf(g.stdout, "pilotwire demo: %d devices play %q (%d steps, %s at %gx: about %s)\n", devices, sc.Name, len(sc.Steps),
		timeline.FormatOffset(last), speed, (time.Duration(float64(last)/speed) + time.Duration(devices)*2*time.Second).Round(time.Second))
	fmt.Fprintf(g.stdout, "  live page: %s\n  proxy: %s (stand-in internet; nothing leaves this machine)\n  flows: %s\n", pageURL(uiLn.Addr(), token), ln.Addr(), g.store)

	var wg sync.WaitGroup
	failures := make([]int, devices)
	for i, a := range addrs {
		wg.Go(func() {
			// Devices start two seconds apart, as a lab switches them on.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(i) * 2 * time.Second):
			}
			r := &scenario.Runner{Proxy: ln.Addr().String(), RootCAs: in.CertPool(), Speed: speed, BytesScale: scale, Jitter: 0.1,
				Seed: uint64(i + 1), LocalAddr: a, Limits: limits}
			recs, _ := r.Run(ctx, sc)
			for k := range recs {
				if !recs[k].Expected(&sc.Steps[k]) {
					failures[i]++
				}
			}
			fmt.Fprintf(g.stderr, "pilotwire demo: %s finished its %d steps\n", labels[a], len(recs))
		})
	}
	wg.Wait()
	interrupted := ctx.Err() != nil
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Shutdown(sctx)
	if err := rec.Close(); err != nil {
		return fmt.Errorf("demo: storing flows: %w", err)
	}
	for i, n := range failures {
		if n > 0 {
			fmt.Fprintf(g.stderr, "pilotwire demo: %s: %d steps did not end as the scenario expects\n", labels[addrs[i]], n)
		}
	}
	if interrupted || !reports {
		return nil
	}
	src := session.FromStore(st, g.store)
	for _, a := range addrs {
		s, err := session.Find(context.Background(), src, timeline.DefaultGap, 0, session.Who{Client: a.String()})
		if err != nil {
			return sessionError(err)
		}
		tl, err := session.Timeline(context.Background(), src, s, cat, timeline.Options{})
		if err != nil {
			return err
		}
		fmt.Fprintln(g.stdout)
		if err := report.Render(g.stdout, "text", tl, report.Options{Generator: "pilotwire " + version, Source: "demo"}); err != nil {
			return err
		}
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

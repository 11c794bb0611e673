package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/metrics"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/store/mem"
	"github.com/pilotwire/pilotwire/internal/timeline"
	"github.com/pilotwire/pilotwire/internal/web"
)

const proxyExamples = `  pilotwire proxy                                  # :8080, status page on 127.0.0.1:8081, flows in ./pilotwire.db
  pilotwire proxy --listen 10.0.0.1:3128 --device vm-01=10.0.0.23 --device vm-02=10.0.0.24
  pilotwire proxy --auth lab:s3cret                # Basic proxy authentication; the user name labels the device
  pilotwire proxy --upstream http://proxy.corp.example:8080   # chain through the corporate proxy
  pilotwire proxy --allow-clients 192.0.2.0/24     # serve clients outside the private ranges
  pilotwire proxy --record=false --ui ""           # forward only (benchmarking)
  pilotwire proxy --enforce allowlist.txt          # lab: behave like a proxy that allows only these hosts
  pilotwire proxy --intercept                      # lab: record full HTTPS URLs (pilotwire ca init first; devices trust its CA)
  pilotwire proxy --intercept --intercept-hosts '*.officecdn.microsoft.com,*.delivery.mp.microsoft.com'
  pilotwire proxy --pac-fallback direct            # PAC says "PROXY ...; DIRECT": devices go direct (uncaptured) if the proxy is down
  pilotwire proxy --store postgres://pilotwire@db.lab/pilotwire --name site-a   # one of several sites sharing a store

Point a Windows device at it (pilotwire prints the addresses when it starts):
  Settings > Network & internet > Proxy > Use setup script: http://ADDR:8080/proxy.pac
  netsh winhttp set proxy ADDR:8080                # the system (WinHTTP) proxy, from an elevated prompt
  DHCP option 252 or a DNS "wpad" name pointing at http://ADDR:8080/wpad.dat (WPAD)
`

// proxyNetwork, when set (by tests), adjusts the proxy before it starts:
// it gives the stand-in internet's resolver, dialer and CA.
var proxyNetwork func(*proxy.Proxy)

// proxyOptions are the flags of the proxy command.
type proxyOptions struct {
	listen, connectPorts, upstream, allowClients, auth, pacFallback string
	recordingFlags
	policy                                           policyFlags
	ui                                               uiFlags
	intercept                                        interceptFlags
	allowPrivate, record                             bool
	devices                                          multiFlag
	maxHeaderBytes, maxConns                         int
	headerTimeout, idleTimeout, grace, flushInterval time.Duration
	maxBacklogMiB                                    int
}

func runProxy(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "proxy", "proxy [flags]", proxyExamples)
	var o proxyOptions
	fs.StringVar(&o.listen, "listen", ":8080", "proxy listen `ADDR` (host:port; empty host: every interface)")
	o.recordingFlags.register(fs, "proxy")
	o.ui.register(fs, "the live page's `ADDR`")
	fs.StringVar(&o.connectPorts, "connect-ports", "443", "`PORTS` CONNECT may reach, comma separated")
	fs.StringVar(&o.upstream, "upstream", "", "send everything through the proxy at `URL` (http://[user:pass@]host:port)")
	fs.StringVar(&o.allowClients, "allow-clients", "", "serve clients in these `CIDRS` (comma separated) instead of loopback and private networks")
	fs.StringVar(&o.auth, "auth", "", "require Basic proxy authentication with `USER:PASS`")
	fs.StringVar(&o.pacFallback, "pac-fallback", "none", "what the PAC file offers when the proxy is down: `none` (devices fail) or direct (devices go direct, uncaptured)")
	fs.BoolVar(&o.allowPrivate, "allow-private-targets", false, "allow targets on loopback, link-local and unspecified addresses (cloud metadata stays refused)")
	fs.Var(&o.devices, "device", "name the client at an address: `NAME=ADDR` (repeatable)")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", proxy.DefaultMaxHeaderBytes, "limit of a request's line and headers, in `BYTES`")
	fs.DurationVar(&o.headerTimeout, "header-timeout", proxy.DefaultHeaderTimeout, "time a client has to send a request's line and headers")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", proxy.DefaultIdleTimeout, "close tunnels and keep-alive connections idle this long")
	fs.IntVar(&o.maxConns, "max-conns", proxy.DefaultMaxConns, "limit of open client connections")
	fs.DurationVar(&o.grace, "grace", 5*time.Second, "on SIGINT/SIGTERM, time open exchanges get to finish")
	fs.DurationVar(&o.flushInterval, "flush-interval", 500*time.Millisecond, "store recorded flows at least this often (at most 1s): what a crash may lose")
	fs.IntVar(&o.maxBacklogMiB, "max-backlog", flow.DefaultMaxBacklog>>20, "while the store cannot be written (disk full), keep at most `MiB` of flows waiting;\n"+
		"past it the oldest are dropped and counted in the sessions they belong to")
	o.policy.register(fs, "others get 403 and are recorded as denied")
	o.intercept.register(fs)
	fs.BoolVar(&o.record, "record", true, "store flows; --record=false only forwards (for benchmarking)")
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("proxy: unexpected argument %q", fs.Arg(0))
	}
	p, err := o.proxy()
	if err != nil {
		return err
	}
	if proxyNetwork != nil {
		proxyNetwork(p)
	}
	if err := o.policy.apply(p, g.stderr, "proxy"); err != nil {
		return err
	}
	if o.maxBacklogMiB <= 0 {
		return usagef("proxy: --max-backlog %d: want a positive number of MiB", o.maxBacklogMiB)
	}
	if err := o.intercept.check("proxy"); err != nil {
		return err
	}
	if err := o.recordingFlags.check(); err != nil {
		return usagef("proxy: %v", err)
	}
	if o.flushInterval <= 0 || o.flushInterval > time.Second {
		return usagef("proxy: --flush-interval %s: must be more than 0 and at most 1s", o.flushInterval)
	}
	var token string
	if o.ui.addr != "" {
		if token, err = o.ui.token("proxy"); err != nil {
			return err
		}
	}

	logger := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p.Logger = logger
	var rec *flow.Recorder
	var st flow.Store
	var hub *live.Hub
	if o.record {
		st, err = o.openStore(ctx, g, "proxy")
		if err != nil {
			return err
		}
		defer st.Close()
		sp, err := o.openSpool(g, "proxy")
		if err != nil {
			return err
		}
		if sp != nil {
			defer sp.Close()
		}
		var publish func([]flow.Flow)
		if o.ui.addr != "" {
			hub = live.NewHub(maxViewers, 0)
			publish = hub.Publish
		}
		rec = flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: o.flushInterval, Logger: logger,
			MaxBacklog: int64(o.maxBacklogMiB) << 20, Publish: publish, Name: o.name, Spool: spoolOf(sp)})
		p.Record = rec.Record
		// Open tunnels show their bytes so far as often as flows are
		// stored.
		p.ProgressEvery = o.flushInterval
	}
	cat, err := loadCatalog(g)
	if err != nil {
		if rec != nil {
			rec.Close()
		}
		return err
	}
	if p.Intercept, err = o.intercept.interceptor(ctx, g, "proxy", cat, st); err != nil {
		if rec != nil {
			rec.Close()
		}
		return err
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		if rec != nil {
			rec.Close()
		}
		return fmt.Errorf("proxy: listen on %s: %w", o.listen, err)
	}
	if err := p.CheckUpstream(ctx, ln.Addr()); err != nil {
		ln.Close()
		if rec != nil {
			rec.Close()
		}
		return usagef("proxy: --upstream %s: %v", o.upstream, err)
	}
	var ui *http.Server
	var uiLn net.Listener
	if o.ui.addr != "" {
		uiLn, err = o.ui.listen("proxy")
		if err != nil {
			ln.Close()
			if rec != nil {
				rec.Close()
			}
			return err
		}
		page, err := proxyPage(g, p, rec, st, hub, token)
		if err != nil {
			ln.Close()
			uiLn.Close()
			if rec != nil {
				rec.Close()
			}
			return err
		}
		met := metrics.New(proxyMetrics(p, rec))
		if record := p.Record; record != nil {
			p.Record = func(f flow.Flow) { met.Observe(f); record(f) }
		} else {
			p.Record = met.Observe
		}
		mctx, stopMetrics := context.WithCancel(ctx)
		defer stopMetrics()
		serveMetrics(mctx, g, page, met, st, cat, timeline.DefaultGap)
		ui = pageServer(page)
		go ui.Serve(uiLn)
	}
	printListening(g.stdout, ln.Addr(), uiLn, token, g.storeName(), o)
	if p.Intercept != nil {
		printIntercepting(g.stdout, p.Intercept, cat)
	}

	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	// Stop: no new connections; open exchanges get the grace period; then
	// every flow is flushed.
	sctx, cancel := context.WithTimeout(context.Background(), o.grace)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("proxy shutdown", "err", err)
	}
	if ui != nil {
		ui.Close()
	}
	var recErr error
	if rec != nil {
		recErr = rec.Close()
		s := rec.Stats()
		if recErr == nil {
			o.stopped(g, "proxy", "", rec)
		}
		if s.Dropped > 0 {
			fmt.Fprintf(g.stderr, "pilotwire proxy: %d flows were dropped while the store could not be written (--max-backlog); the sessions they belong to say so\n", s.Dropped)
		}
	}
	if serveErr != nil && !errors.Is(serveErr, proxy.ErrClosed) {
		return fmt.Errorf("proxy: %w", serveErr)
	}
	if recErr != nil {
		return fmt.Errorf("proxy: storing flows: %w", recErr)
	}
	return nil
}

// proxyMetrics are the counters /metrics reads from the proxy, its
// recorder (nil: not recording) and its interceptor (nil: off).
func proxyMetrics(p *proxy.Proxy, rec *flow.Recorder) metrics.Sources {
	src := metrics.Sources{Proxy: func() (int64, int64, int64) {
		s := p.Stats()
		return s.OpenConns, s.OpenTunnels, s.Requests
	}}
	if rec != nil {
		src.Recorder = func() (flow.RecorderStats, flow.RecorderHealth) { return rec.Stats(), rec.Health() }
	}
	if ic := p.Intercept; ic != nil {
		src.Intercept = func() (int64, int) { return ic.Leaves().Minted(), len(ic.Learned()) }
	}
	return src
}

// proxy builds the Proxy the flags describe.
func (o *proxyOptions) proxy() (*proxy.Proxy, error) {
	p := &proxy.Proxy{
		AllowPrivateTargets: o.allowPrivate,
		MaxHeaderBytes:      o.maxHeaderBytes,
		HeaderTimeout:       o.headerTimeout,
		IdleTimeout:         o.idleTimeout,
		MaxConns:            o.maxConns,
	}
	if o.maxHeaderBytes < 1024 || o.headerTimeout <= 0 || o.idleTimeout <= 0 || o.maxConns < 1 || o.grace < 0 {
		return nil, usagef("proxy: limits must be positive (--max-header-bytes at least 1024)")
	}
	switch o.pacFallback {
	case "none":
	case "direct":
		p.PACFallbackDirect = true
	default:
		return nil, usagef("proxy: --pac-fallback %q: want none or direct", o.pacFallback)
	}
	for part := range strings.SplitSeq(o.connectPorts, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 || n > 65535 {
			return nil, usagef("proxy: --connect-ports: %q is not a port", part)
		}
		p.ConnectPorts = append(p.ConnectPorts, n)
	}
	if p.ConnectPorts == nil {
		p.ConnectPorts = []int{}
	}
	if o.upstream != "" {
		u, err := url.Parse(o.upstream)
		if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, usagef("proxy: --upstream %q: want http://[user:pass@]host:port", o.upstream)
		}
		p.Upstream = u
	}
	if o.allowClients != "" {
		nets, err := proxy.ParsePrefixes(o.allowClients)
		if err != nil {
			return nil, usagef("proxy: --allow-clients: %v", err)
		}
		p.AllowClients = nets
	}
	if o.auth != "" {
		user, pass, ok := strings.Cut(o.auth, ":")
		if !ok || user == "" {
			return nil, usagef("proxy: --auth: want USER:PASS")
		}
		p.AuthUser, p.AuthPass = user, pass
	}
	for _, d := range o.devices {
		name, addr, ok := strings.Cut(d, "=")
		a, err := netip.ParseAddr(strings.TrimSpace(addr))
		if !ok || name == "" || err != nil {
			return nil, usagef("proxy: --device %q: want NAME=ADDR, e.g. vm-01=10.0.0.23", d)
		}
		if p.Devices == nil {
			p.Devices = make(map[netip.Addr]string)
		}
		p.Devices[a.Unmap()] = name
	}
	return p, nil
}

// printListening says where the proxy listens: one line per address a
// client can use, with its PAC URL, and how to point Windows at it.
func printListening(w io.Writer, addr net.Addr, ui net.Listener, token, store string, o proxyOptions) {
	ap := addr.(*net.TCPAddr).AddrPort()
	port := ap.Port()
	var addrs []netip.Addr
	if ap.Addr().IsUnspecified() {
		if ifaddrs, err := net.InterfaceAddrs(); err == nil {
			for _, ia := range ifaddrs {
				if pn, ok := ia.(*net.IPNet); ok {
					a, ok := netip.AddrFromSlice(pn.IP)
					if ok && !a.Unmap().IsLinkLocalUnicast() && (ap.Addr().Is6() || a.Unmap().Is4()) {
						addrs = append(addrs, a.Unmap())
					}
				}
			}
		}
	}
	if len(addrs) == 0 {
		addrs = []netip.Addr{ap.Addr().Unmap()}
	}
	example := ""
	for _, a := range addrs {
		hp := netip.AddrPortFrom(a, port).String()
		fmt.Fprintf(w, "pilotwire proxy: listening on %s  PAC http://%s/proxy.pac\n", hp, hp)
		if example == "" && !a.IsLoopback() {
			example = hp
		}
	}
	if example == "" {
		example = netip.AddrPortFrom(addrs[0], port).String()
	}
	fmt.Fprintf(w, "  Windows: netsh winhttp set proxy %s   or Settings > Proxy > setup script http://%s/proxy.pac\n", example, example)
	if ui != nil {
		fmt.Fprintf(w, "  live page: %s\n", pageURL(ui.Addr(), token))
	}
	if o.record && o.spool != "" {
		fmt.Fprintf(w, "  spool: %s (flows wait there while the store cannot be written)\n", o.spool)
	}
	if o.record && o.name != "" {
		fmt.Fprintf(w, "  flows: %s (stored every %s, as proxy %s)\n", store, o.flushInterval, o.name)
	} else if o.record {
		fmt.Fprintf(w, "  flows: %s (stored every %s)\n", store, o.flushInterval)
	} else {
		fmt.Fprintf(w, "  flows: not recorded (--record=false)\n")
	}
}

// proxyPage is the live page of a proxy: its store (an empty one when
// nothing is recorded), the hub the recorder publishes to, and the proxy's
// and recorder's state.
func proxyPage(g *globals, p *proxy.Proxy, rec *flow.Recorder, st flow.Store, hub *live.Hub, token string) (*web.Server, error) {
	cat, err := loadCatalog(g)
	if err != nil {
		return nil, err
	}
	source := g.storeName()
	if st == nil {
		st, source = mem.New(), "not recorded (--record=false)"
	}
	return web.New(web.Options{Store: st, Hub: hub, Catalog: cat, Token: token, Source: source, Version: version, Mode: "proxy", Check: pageCheck(cat, checkNetwork),
		Status: func() web.Status {
			s := p.Stats()
			out := web.Status{Proxy: &web.ProxyStatus{OpenConns: s.OpenConns, OpenTunnels: s.OpenTunnels, Requests: s.Requests,
				UptimeSeconds: time.Since(s.Started).Seconds(), Intercepting: p.Intercept != nil}}
			if rec != nil {
				h, rs := rec.Health(), rec.Stats()
				out.Recording = &web.RecordingStatus{OK: h.Recording, Text: h.String(), Writes: rs.Written, Dropped: rs.Dropped}
			}
			return out
		}})
}

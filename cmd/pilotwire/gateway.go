package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/gateway"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/proxy"
)

const gatewayExamples = `  sudo pilotwire gateway --lan eth1 --wan eth0     # route, NAT and capture the devices on eth1; flows in ./pilotwire.db
  pilotwire gateway --lan eth1 --wan eth0 --print-rules   # the nftables table it would install; nothing changed
  sudo pilotwire gateway --lan eth1 --wan eth0 --dns-upstream 192.0.2.53
  sudo pilotwire gateway --lan eth1 --wan eth0 --dhcp 192.168.77.0/24   # also lease addresses (a lab with no DHCP)
  sudo pilotwire gateway --lan eth1 --wan eth0 --intercept   # lab: full HTTPS URLs (pilotwire ca init first; devices trust its CA)
  sudo pilotwire gateway --lan eth1 --wan eth0 --enforce allowlist.txt   # lab: a firewall that allows only these hosts
  sudo pilotwire gateway --cleanup                  # remove what a killed gateway left (its table; forwarding restored)

The devices need no proxy setting: give them this machine's --lan address as their default
gateway and DNS server (DHCP or static). Their TCP is recorded like the proxy's flows (tunnels
named by SNI, plain HTTP with full URLs), every DNS question and answer too; other traffic is
routed and masqueraded, and its UDP noted (QUIC by the SNI of its Initial, NTP, the rest by
address and port, named by DNS). IPv6 too when --lan has an IPv6 address other than
link-local (a ULA such as fd00:77::1/64): the devices' IPv6 router and DNS server is that
address. With --intercept, the devices' TLS is opened as the proxy's --intercept opens it
(the same catalog of hosts never to open, the same learning). Linux only; needs root
(CAP_NET_ADMIN).
`

func joinAddrs(as []netip.Addr) string {
	ss := make([]string, len(as))
	for i, a := range as {
		ss[i] = a.String()
	}
	return strings.Join(ss, ", ")
}

// gatewayOptions are the flags of the gateway command.
type gatewayOptions struct {
	lan, wan, dnsUpstream     string
	dhcp                      string
	printRules, cleanup       bool
	ui                        uiFlags
	devices                   multiFlag
	idleTimeout, grace, flush time.Duration
	maxConns                  int
	policy                    policyFlags
	intercept                 interceptFlags
	recordingFlags
}

func runGateway(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "gateway", "gateway --lan IF --wan IF [flags]", gatewayExamples)
	var o gatewayOptions
	fs.StringVar(&o.lan, "lan", "", "the devices' `INTERFACE` (its IPv4 address is their gateway and DNS server)")
	fs.StringVar(&o.wan, "wan", "", "the `INTERFACE` towards the internet (the devices' traffic is masqueraded out of it)")
	fs.StringVar(&o.dnsUpstream, "dns-upstream", "", "DNS server `ADDR` (IP or IP:port) the recording forwarder asks (default: the first nameserver of /etc/resolv.conf)")
	fs.StringVar(&o.dhcp, "dhcp", "", "also run a DHCP server on --lan leasing addresses of `CIDR` (inside its subnet), with the --lan address as router and DNS server")
	fs.BoolVar(&o.printRules, "print-rules", false, "print the nftables table it would install (nft syntax) and change nothing")
	fs.BoolVar(&o.cleanup, "cleanup", false, "remove the table a killed gateway left and restore IP forwarding, then exit")
	o.ui.register(fs, "the live page's `ADDR`")
	o.recordingFlags.register(fs, "gateway")
	fs.Var(&o.devices, "device", "name the device at an address: `NAME=ADDR` (repeatable)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", proxy.DefaultIdleTimeout, "close connections idle this long")
	fs.IntVar(&o.maxConns, "max-conns", proxy.DefaultMaxConns, "limit of open device connections")
	fs.DurationVar(&o.grace, "grace", 5*time.Second, "on SIGINT/SIGTERM, time open connections get to finish")
	fs.DurationVar(&o.flush, "flush-interval", 500*time.Millisecond, "store recorded flows at least this often (at most 1s): what a crash may lose")
	o.policy.register(fs, "other hosts' connections are closed (HTTP: 403) and recorded as denied;\n"+
		"the devices' UDP 443 (QUIC, which a list cannot judge) is dropped, so they fall back to TCP")
	o.intercept.register(fs)
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("gateway: unexpected argument %q", fs.Arg(0))
	}
	if o.cleanup {
		if o.printRules {
			return usagef("gateway: --cleanup and --print-rules do not go together")
		}
		lo, err := gateway.Cleanup()
		if err != nil {
			return err
		}
		switch {
		case !lo.Found:
			fmt.Fprintf(g.stderr, "pilotwire gateway: nothing to clean up (no table inet %s)\n", gateway.TableName)
		case lo.Forwarding != "" && lo.Forwarding6 != "":
			fmt.Fprintf(g.stderr, "pilotwire gateway: removed table inet %s left by an earlier run; IPv4 forwarding set back to %s, IPv6 forwarding to %s\n", gateway.TableName, lo.Forwarding, lo.Forwarding6)
		case lo.Forwarding != "":
			fmt.Fprintf(g.stderr, "pilotwire gateway: removed table inet %s left by an earlier run; IPv4 forwarding set back to %s\n", gateway.TableName, lo.Forwarding)
		default:
			fmt.Fprintf(g.stderr, "pilotwire gateway: removed table inet %s left by an earlier run (it did not say what IPv4 forwarding was; left as it is)\n", gateway.TableName)
		}
		return nil
	}
	if o.lan == "" || o.wan == "" {
		return usagef("gateway: --lan and --wan are required (see pilotwire gateway --help)")
	}
	// QUIC goes past the relay, so a list could not judge it: while one is
	// enforced it is dropped, and clients fall back to TCP.
	plan := gateway.Plan{LAN: o.lan, WAN: o.wan, DropQUIC: o.policy.on()}
	if err := plan.CheckInterfaces(); err != nil {
		return usagef("gateway: %v", err)
	}
	if o.printRules {
		rules, err := gateway.PrintPlan(plan)
		if err != nil {
			return err
		}
		fmt.Fprint(g.stdout, rules)
		return nil
	}
	cfg := gateway.Config{Plan: plan, ShutdownGrace: o.grace}
	if o.dnsUpstream != "" {
		up, err := gateway.ParseUpstream(o.dnsUpstream)
		if err != nil {
			return usagef("gateway: --dns-upstream: %v", err)
		}
		cfg.DNSUpstream = up
	}
	if err := o.intercept.check("gateway"); err != nil {
		return err
	}
	if err := o.recordingFlags.check(); err != nil {
		return usagef("gateway: %v", err)
	}
	if o.flush <= 0 || o.flush > time.Second {
		return usagef("gateway: --flush-interval %s: must be more than 0 and at most 1s", o.flush)
	}
	var printMu sync.Mutex // DHCP leases are told from the server's goroutines
	if o.dhcp != "" {
		pool, err := gateway.ParseDHCPPool(o.dhcp)
		if err != nil {
			return usagef("gateway: --dhcp: %v", err)
		}
		cfg.DHCP = &gateway.DHCP{Pool: pool, Leased: func(mac net.HardwareAddr, addr netip.Addr, hostname string) {
			printMu.Lock()
			defer printMu.Unlock()
			if hostname != "" {
				hostname = " (" + hostname + ")"
			}
			fmt.Fprintf(g.stderr, "pilotwire gateway: DHCP: %s leased to %s%s\n", addr, mac, hostname)
		}}
	}
	// The proxy's own flags' checks and device names, with its defaults.
	po := proxyOptions{maxHeaderBytes: proxy.DefaultMaxHeaderBytes, headerTimeout: proxy.DefaultHeaderTimeout,
		idleTimeout: o.idleTimeout, maxConns: o.maxConns, grace: o.grace, pacFallback: "none", devices: o.devices}
	p, err := po.proxy()
	if err != nil {
		return err
	}
	if err := o.policy.apply(p, g.stderr, "gateway"); err != nil {
		return err
	}
	var token string
	if o.ui.addr != "" {
		if token, err = o.ui.token("gateway"); err != nil {
			return err
		}
	}

	logger := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p.Logger, cfg.Logger = logger, logger
	st, err := o.openStore(ctx, g, "gateway")
	if err != nil {
		return err
	}
	defer st.Close()
	sp, err := o.openSpool(g, "gateway")
	if err != nil {
		return err
	}
	if sp != nil {
		defer sp.Close()
	}
	var hub *live.Hub
	var publish func([]flow.Flow)
	if o.ui.addr != "" {
		hub = live.NewHub(maxViewers, 0)
		publish = hub.Publish
	}
	rec := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: o.flush, Logger: logger,
		MaxBacklog: flow.DefaultMaxBacklog, Publish: publish, Name: o.name, Spool: spoolOf(sp)})
	p.Record, cfg.Record = rec.Record, rec.Record
	p.ProgressEvery = o.flush
	cfg.Proxy = p
	cat, err := loadCatalog(g)
	if err != nil {
		rec.Close()
		return err
	}
	if p.Intercept, err = o.intercept.interceptor(ctx, g, "gateway", cat, st); err != nil {
		rec.Close()
		return err
	}

	var ui *http.Server
	var uiLn net.Listener
	if o.ui.addr != "" {
		if uiLn, err = o.ui.listen("gateway"); err != nil {
			rec.Close()
			return err
		}
		page, err := proxyPage(g, p, rec, st, hub, token)
		if err != nil {
			uiLn.Close()
			rec.Close()
			return err
		}
		ui = pageServer(page)
		go ui.Serve(uiLn)
		defer ui.Close()
	}
	runErr := gateway.Run(ctx, cfg, func(s gateway.Started) {
		if s.Leftover.Found {
			fmt.Fprintf(g.stderr, "pilotwire gateway: replaced table inet %s left by an earlier run that did not stop cleanly\n", gateway.TableName)
		}
		fmt.Fprintf(g.stdout, "pilotwire gateway: devices on %s: gateway and DNS server %s (TCP redirected to %s, DNS to %s, upstream %s)\n",
			o.lan, s.LANAddr, s.TCP, s.DNS, s.Upstream)
		if len(s.LANAddrs6) > 0 {
			fmt.Fprintf(g.stdout, "  IPv6: gateway and DNS server %s (the same ports); IPv6 forwarding on while it runs\n", joinAddrs(s.LANAddrs6))
		}
		fmt.Fprintf(g.stdout, "  forwarding to %s, masqueraded, UDP noted; nftables table inet %s (removed on exit)\n", o.wan, gateway.TableName)
		if plan.DropQUIC {
			fmt.Fprintf(g.stdout, "  enforcing: the devices' UDP 443 (QUIC) is dropped, so they fall back to TCP, where the lists apply\n")
		}
		if s.DHCP.IsValid() {
			fmt.Fprintf(g.stdout, "  DHCP: leasing %s for %s, router and DNS server %s\n", s.DHCP, gateway.DefaultLeaseTime, s.LANAddr)
		}
		if uiLn != nil {
			fmt.Fprintf(g.stdout, "  live page: %s\n", pageURL(uiLn.Addr(), token))
		}
		fmt.Fprintf(g.stdout, "  flows: %s (stored every %s)\n", g.storeName(), o.flush)
		if p.Intercept != nil {
			printIntercepting(g.stdout, p.Intercept, cat)
		}
	})
	// Run has stopped every connection: what the recorder holds is all.
	recErr := rec.Close()
	if runErr != nil {
		return runErr
	}
	if recErr != nil {
		return fmt.Errorf("gateway: storing flows: %w", recErr)
	}
	o.stopped(g, "gateway", "rules removed", rec)
	return nil
}

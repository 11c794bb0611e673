package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Run installs the gateway's rules, serves until ctx ends, then removes
// them and restores forwarding. started, if not nil, is called once the
// rules are in place and the listeners open.
func Run(ctx context.Context, cfg Config, started func(Started)) (err error) {
	p := cfg.Plan
	if p.TCPPort == 0 {
		p.TCPPort = DefaultTCPPort
	}
	if p.DNSPort == 0 {
		p.DNSPort = DefaultDNSPort
	}
	p.Forwarding = "0"
	if err := p.check(); err != nil {
		return err
	}
	if cfg.Proxy == nil {
		return errors.New("gateway: no proxy to serve connections")
	}
	lanAddr, err := interfaceIPv4(p.LAN, "--lan")
	if err != nil {
		return err
	}
	if _, err := net.InterfaceByName(p.WAN); err != nil {
		return fmt.Errorf("--wan %s: %w", p.WAN, err)
	}
	upstream := cfg.DNSUpstream
	if upstream == "" {
		if upstream, err = ResolvConfUpstream("/etc/resolv.conf"); err != nil {
			return err
		}
	}

	cc, err := nftables.New()
	if err != nil {
		return netlinkErr("nftables", err)
	}
	lo, err := findLeftover(cc)
	if err != nil {
		return err
	}
	if lo.Found && lo.Forwarding != "" {
		p.Forwarding = lo.Forwarding // what the machine had before the crashed run
	} else if p.Forwarding, err = forwarding(); err != nil {
		return err
	}

	st := Started{LANAddr: lanAddr, Upstream: upstream, Leftover: lo}
	st.TCP = netip.AddrPortFrom(lanAddr, p.TCPPort)
	st.DNS = netip.AddrPortFrom(lanAddr, p.DNSPort)
	ln, err := net.Listen("tcp4", st.TCP.String())
	if err != nil {
		return fmt.Errorf("transparent listener: %w", err)
	}
	defer ln.Close()
	dnsUDP, err := net.ListenPacket("udp4", st.DNS.String())
	if err != nil {
		return fmt.Errorf("DNS forwarder: %w", err)
	}
	defer dnsUDP.Close()
	dnsTCP, err := net.Listen("tcp4", st.DNS.String())
	if err != nil {
		return fmt.Errorf("DNS forwarder: %w", err)
	}
	defer dnsTCP.Close()

	if err := install(p); err != nil {
		return err
	}
	// From here on, whatever happens, the rules go and forwarding is put
	// back.
	defer func() {
		if terr := teardown(p.Forwarding); terr != nil {
			err = errors.Join(err, terr)
		}
	}()
	if err := setForwarding("1"); err != nil {
		return err
	}
	st.Rules, _ = Rules(p)

	nm := newNames(maxNames)
	fw := newForwarder(upstream, cfg.Record, nm)
	servers := []*dns.Server{
		{PacketConn: dnsUDP, Handler: fw, Net: "udp"},
		{Listener: dnsTCP, Handler: fw, Net: "tcp", ReadTimeout: 10 * time.Second},
	}
	serveErr := make(chan error, len(servers)+1)
	for _, s := range servers {
		go func() { serveErr <- s.ActivateAndServe() }()
	}
	go func() { serveErr <- accept(ln, cfg, nm) }()
	if started != nil {
		started(st)
	}

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("gateway stopped: %w", err)
	}
	ln.Close()
	for _, s := range servers {
		_ = s.Shutdown()
	}
	grace := cfg.ShutdownGrace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = cfg.Proxy.Shutdown(sctx)
	return err
}

// teardown removes the table and restores forwarding.
func teardown(fwd string) error {
	var errs []error
	cc, err := nftables.New()
	if err == nil {
		cc.DelTable(table())
		if err = cc.Flush(); errors.Is(err, unix.ENOENT) {
			err = nil // removed already (pilotwire gateway --cleanup)
		}
	}
	if err != nil {
		errs = append(errs, netlinkErr("removing nftables table inet "+TableName+" (pilotwire gateway --cleanup removes it)", err))
	}
	if err := setForwarding(fwd); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// accept hands each redirected connection to the proxy with its original
// destination and the name DNS gave it.
func accept(ln net.Listener, cfg Config, nm *names) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if cfg.Logger != nil {
				cfg.Logger.Error("gateway: accept", "err", err, "retry_in", backoff)
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		tc, ok := nc.(*net.TCPConn)
		if !ok {
			nc.Close()
			continue
		}
		dst, err := originalDst(tc)
		local := addrPortOf(nc.LocalAddr())
		if err == nil && dst == local {
			err = errors.New("not redirected (a connection straight to the listener)")
		}
		if err != nil {
			if cfg.Logger != nil {
				cfg.Logger.Error("gateway: "+err.Error(), "client", nc.RemoteAddr().String())
			}
			nc.Close()
			continue
		}
		client := addrPortOf(nc.RemoteAddr())
		cfg.Proxy.ServeTransparent(nc, dst, nm.name(client.Addr(), dst.Addr()))
	}
}

// interfaceIPv4 is the first IPv4 address of the interface name.
func interfaceIPv4(name, flag string) (netip.Addr, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s %s: %w", flag, name, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s %s: %w", flag, name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && n.IP.To4() != nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s %s: the interface has no IPv4 address (the devices' gateway needs one)", flag, name)
}

// PrintPlan is the table Run would install for p now (ports defaulted,
// forwarding as the machine has it), without changing anything.
func PrintPlan(p Plan) (string, error) {
	if p.TCPPort == 0 {
		p.TCPPort = DefaultTCPPort
	}
	if p.DNSPort == 0 {
		p.DNSPort = DefaultDNSPort
	}
	fwd, err := forwarding()
	if err != nil {
		return "", err
	}
	p.Forwarding = fwd
	return Rules(p)
}

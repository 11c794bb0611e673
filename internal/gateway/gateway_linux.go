package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/pilotwire/pilotwire/internal/capture"
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
	lanNet, lanAddrs6, err := interfaceAddrs(p.LAN, "--lan")
	if err != nil {
		return err
	}
	lanAddr := lanNet.Addr()
	var dhcpLeases *leases
	if cfg.DHCP != nil {
		if dhcpLeases, err = newLeases(*cfg.DHCP, lanNet, lanAddr); err != nil {
			return err
		}
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
	// The values to restore are what the machine had before the crashed
	// run, when one left its table.
	if lo.Found && lo.Forwarding != "" {
		p.Forwarding = lo.Forwarding
	} else if p.Forwarding, err = forwarding(forwardingFile); err != nil {
		return err
	}
	if lo.Found && lo.Forwarding6 != "" {
		p.Forwarding6 = lo.Forwarding6
	} else if len(lanAddrs6) > 0 {
		if p.Forwarding6, err = forwarding(forwardingFile6); err != nil {
			return err
		}
	}

	st := Started{LANAddr: lanAddr, LANAddrs6: lanAddrs6, Upstream: upstream, Leftover: lo}
	st.TCP = netip.AddrPortFrom(lanAddr, p.TCPPort)
	st.DNS = netip.AddrPortFrom(lanAddr, p.DNSPort)
	// The listeners, on the LAN's IPv4 address and each IPv6 one: where
	// the redirect sends a packet of that family.
	var lns []net.Listener
	var servers []*dns.Server
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	nm := newNames(maxNames)
	fw := newForwarder(upstream, cfg.Record, nm)
	defer fw.close()
	for _, a := range append([]netip.Addr{lanAddr}, lanAddrs6...) {
		network := "4"
		if a.Is6() {
			network = "6"
		}
		ln, err := net.Listen("tcp"+network, netip.AddrPortFrom(a, p.TCPPort).String())
		if err != nil {
			return fmt.Errorf("transparent listener: %w", err)
		}
		lns = append(lns, ln)
		dnsUDP, err := net.ListenPacket("udp"+network, netip.AddrPortFrom(a, p.DNSPort).String())
		if err != nil {
			return fmt.Errorf("DNS forwarder: %w", err)
		}
		defer dnsUDP.Close()
		dnsTCP, err := net.Listen("tcp"+network, netip.AddrPortFrom(a, p.DNSPort).String())
		if err != nil {
			return fmt.Errorf("DNS forwarder: %w", err)
		}
		defer dnsTCP.Close()
		servers = append(servers,
			&dns.Server{PacketConn: dnsUDP, Handler: fw, Net: "udp"},
			&dns.Server{Listener: dnsTCP, Handler: fw, Net: "tcp", ReadTimeout: 10 * time.Second})
	}

	// The forwarded UDP is noted from the LAN side (a packet socket that
	// the kernel filter passes only that UDP): opened before anything
	// changes, so a missing CAP_NET_RAW changes nothing.
	udpIdle := cfg.UDPIdle
	if udpIdle <= 0 {
		udpIdle = DefaultUDPIdle
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	capt, err := capture.Open(capture.Options{
		Interface: p.LAN,
		Prefix:    "gw-udp-" + hex.EncodeToString(id[:]) + "-",
		Record:    notedUDP(cfg.Record, nm, p.DropQUIC),
		Filter:    udpFilter(),
		UDPIdle:   udpIdle,
	})
	if err != nil {
		return fmt.Errorf("gateway: noting UDP: %w", err)
	}
	captCtx, stopCapt := context.WithCancel(context.Background())
	captDone := make(chan error, 1)
	go func() {
		_, err := capt.Run(captCtx)
		captDone <- err
	}()
	// Stopped after the listeners: what it still holds is emitted then.
	defer func() {
		stopCapt()
		if cerr := <-captDone; cerr != nil {
			err = errors.Join(err, fmt.Errorf("gateway: noting UDP: %w", cerr))
		}
	}()

	if dhcpLeases != nil {
		srv, err := server4.NewServer(p.LAN, &net.UDPAddr{Port: dhcpv4.ServerPort}, dhcpHandler(dhcpLeases, cfg))
		if err != nil {
			return fmt.Errorf("gateway: DHCP server on %s: %w", p.LAN, err)
		}
		go func() {
			if err := srv.Serve(); err != nil && !errors.Is(err, net.ErrClosed) && cfg.Logger != nil {
				cfg.Logger.Error("gateway: DHCP server stopped", "err", err)
			}
		}()
		defer srv.Close()
		st.DHCP = cfg.DHCP.Pool
	}

	if err := install(p); err != nil {
		return err
	}
	// From here on, whatever happens, the rules go and forwarding is put
	// back.
	defer func() {
		if terr := teardown(p.Forwarding, p.Forwarding6); terr != nil {
			err = errors.Join(err, terr)
		}
	}()
	if err := setForwarding(forwardingFile, "1"); err != nil {
		return err
	}
	if len(lanAddrs6) > 0 {
		if err := setForwarding(forwardingFile6, "1"); err != nil {
			return err
		}
	}
	st.Rules, _ = Rules(p)

	serveErr := make(chan error, len(servers)+len(lns))
	for _, s := range servers {
		go func() { serveErr <- s.ActivateAndServe() }()
	}
	for _, ln := range lns {
		go func() { serveErr <- accept(ln, cfg, nm) }()
	}
	if started != nil {
		started(st)
	}

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("gateway stopped: %w", err)
	}
	for _, ln := range lns {
		ln.Close()
	}
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

// teardown removes the table and restores forwarding (fwd6 "": IPv6's
// was left alone).
func teardown(fwd, fwd6 string) error {
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
	if err := restoreForwarding(fwd, fwd6); err != nil {
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
		dst, err := OriginalDst(tc)
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

// dhcpHandler answers each DHCP message from the leases and tells
// cfg.DHCP.Leased of each address acknowledged.
func dhcpHandler(ls *leases, cfg Config) server4.Handler {
	return func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		resp, leased, err := ls.reply(m, time.Now())
		if errors.Is(err, errNoReply) {
			return
		}
		if err != nil {
			if cfg.Logger != nil {
				cfg.Logger.Error("gateway: DHCP: "+err.Error(), "client", m.ClientHWAddr.String())
			}
			return
		}
		if _, err := conn.WriteTo(resp.ToBytes(), peer); err != nil && cfg.Logger != nil {
			cfg.Logger.Error("gateway: DHCP answer", "err", err, "client", m.ClientHWAddr.String())
		}
		if leased.IsValid() && cfg.DHCP.Leased != nil {
			cfg.DHCP.Leased(m.ClientHWAddr, leased, m.HostName())
		}
	}
}

// interfaceAddrs is the first IPv4 address of the interface name (with
// its prefix), which it must have, and its IPv6 addresses other than
// link-local ones.
func interfaceAddrs(name, flag string) (v4 netip.Prefix, v6 []netip.Addr, err error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return v4, nil, fmt.Errorf("%s %s: %w", flag, name, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return v4, nil, fmt.Errorf("%s %s: %w", flag, name, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		switch ip = ip.Unmap(); {
		case ip.Is4():
			if !v4.IsValid() {
				ones, _ := n.Mask.Size()
				v4 = netip.PrefixFrom(ip, ones)
			}
		case ip.IsGlobalUnicast():
			v6 = append(v6, ip)
		}
	}
	if !v4.IsValid() {
		return v4, nil, fmt.Errorf("%s %s: the interface has no IPv4 address (the devices' gateway needs one)", flag, name)
	}
	return v4, v6, nil
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
	fwd, err := forwarding(forwardingFile)
	if err != nil {
		return "", err
	}
	p.Forwarding = fwd
	// IPv6 forwarding is switched (and so remembered) only when the LAN
	// has an IPv6 address; an interface not there yet has none.
	if _, v6, err := interfaceAddrs(p.LAN, "--lan"); err == nil && len(v6) > 0 {
		if p.Forwarding6, err = forwarding(forwardingFile6); err != nil {
			return "", err
		}
	}
	return Rules(p)
}

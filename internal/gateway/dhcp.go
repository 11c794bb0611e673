package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// DHCP is the optional DHCP server of the LAN (pilotwire gateway --dhcp):
// it leases addresses of Pool to the devices, with the gateway's LAN
// address as their router and DNS server.
type DHCP struct {
	// Pool is the range handed out, inside the LAN interface's subnet;
	// the subnet's network and broadcast addresses and the gateway's
	// own are never handed out.
	Pool netip.Prefix
	// LeaseTime is how long a lease lasts; if zero, DefaultLeaseTime.
	LeaseTime time.Duration
	// Leased, if not nil, is told of each lease given or renewed (the
	// client's hardware address, its address, and the host name it sent).
	Leased func(mac net.HardwareAddr, addr netip.Addr, hostname string)
}

// DefaultLeaseTime is a lease's length: an hour, so that a lab device
// renews within a run and a device gone frees its address soon.
const DefaultLeaseTime = time.Hour

// offerHold is how long an offered address stays reserved for the client
// it was offered to, waiting for its request.
const offerHold = time.Minute

// ParseDHCPPool checks a --dhcp value: an IPv4 prefix (CIDR) of at most
// 65536 addresses and at least 4.
func ParseDHCPPool(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("DHCP pool %q: not a CIDR such as 192.168.77.0/24", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("DHCP pool %s: not IPv4 (DHCP is IPv4's; IPv6 devices use router advertisements)", s)
	}
	if p.Bits() < 16 || p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("DHCP pool %s: want a prefix length from /16 to /30", s)
	}
	return p.Masked(), nil
}

// leases is the DHCP server's state: the addresses it gave, by client.
// It is bounded by the pool: one lease per address.
type leases struct {
	mu       sync.Mutex
	pool     netip.Prefix
	subnet   netip.Prefix // the LAN interface's
	server   netip.Addr   // the gateway's LAN address: router, DNS, server identifier
	duration time.Duration
	byMAC    map[string]*lease
	byAddr   map[netip.Addr]*lease
}

type lease struct {
	mac     string // "" for an address a client declined (in use by someone)
	addr    netip.Addr
	expires time.Time
	bound   bool // acknowledged; false while only offered
}

func newLeases(d DHCP, subnet netip.Prefix, server netip.Addr) (*leases, error) {
	if !subnet.Contains(d.Pool.Addr()) || d.Pool.Bits() < subnet.Bits() {
		return nil, fmt.Errorf("--dhcp %s: not inside the LAN interface's subnet %s", d.Pool, subnet.Masked())
	}
	dur := d.LeaseTime
	if dur <= 0 {
		dur = DefaultLeaseTime
	}
	return &leases{pool: d.Pool, subnet: subnet.Masked(), server: server, duration: dur,
		byMAC: map[string]*lease{}, byAddr: map[netip.Addr]*lease{}}, nil
}

// usable reports whether a may be leased at all.
func (ls *leases) usable(a netip.Addr) bool {
	if !a.Is4() || !ls.pool.Contains(a) || a == ls.server || a == ls.subnet.Addr() {
		return false
	}
	b := a.As4()
	bcast := ls.subnet.Addr().As4()
	for i := range 4 {
		ones := ls.subnet.Bits() - 8*i
		switch {
		case ones >= 8:
		case ones <= 0:
			bcast[i] = 0xff
		default:
			bcast[i] |= 0xff >> ones
		}
	}
	return b != bcast
}

// free reports whether a may be given to mac now.
func (ls *leases) free(a netip.Addr, mac string, now time.Time) bool {
	if !ls.usable(a) {
		return false
	}
	l, ok := ls.byAddr[a]
	return !ok || l.mac == mac || now.After(l.expires)
}

// take gives a to mac until expires, dropping what either held before.
func (ls *leases) take(a netip.Addr, mac string, expires time.Time, bound bool) {
	if old, ok := ls.byMAC[mac]; ok {
		delete(ls.byAddr, old.addr)
	}
	if old, ok := ls.byAddr[a]; ok && old.mac != "" {
		delete(ls.byMAC, old.mac)
	}
	l := &lease{mac: mac, addr: a, expires: expires, bound: bound}
	ls.byMAC[mac] = l
	ls.byAddr[a] = l
}

// pick is the address to offer mac: its lease's, the one it asks for if
// free, else the lowest free address of the pool.
func (ls *leases) pick(mac string, asked netip.Addr, now time.Time) (netip.Addr, bool) {
	if l, ok := ls.byMAC[mac]; ok && ls.free(l.addr, mac, now) {
		return l.addr, true
	}
	if asked.IsValid() && ls.free(asked, mac, now) {
		return asked, true
	}
	for a := ls.pool.Addr(); ls.pool.Contains(a); a = a.Next() {
		if ls.free(a, mac, now) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// errNoReply: the message wants no answer (another server was chosen, a
// release, a message of no interest).
var errNoReply = errors.New("no reply")

// reply is the server's answer to req at now, or errNoReply; leased is
// the address acknowledged, if any.
func (ls *leases) reply(req *dhcpv4.DHCPv4, now time.Time) (resp *dhcpv4.DHCPv4, leased netip.Addr, err error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest || len(req.ClientHWAddr) == 0 {
		return nil, leased, errNoReply
	}
	mac := req.ClientHWAddr.String()
	asked, _ := netip.AddrFromSlice(req.RequestedIPAddress().To4())
	ciaddr, _ := netip.AddrFromSlice(req.ClientIPAddr.To4())
	if ciaddr.IsUnspecified() {
		ciaddr = netip.Addr{}
	}
	sid, _ := netip.AddrFromSlice(req.ServerIdentifier().To4())
	ls.mu.Lock()
	defer ls.mu.Unlock()
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		a, ok := ls.pick(mac, asked, now)
		if !ok {
			return nil, leased, errors.New("the pool is exhausted")
		}
		if l, ok := ls.byMAC[mac]; !ok || l.addr != a || !l.bound {
			ls.take(a, mac, now.Add(offerHold), false)
		}
		resp, err = ls.answer(req, dhcpv4.MessageTypeOffer, a)
		return resp, leased, err
	case dhcpv4.MessageTypeRequest:
		if sid.IsValid() && sid != ls.server {
			// It chose another server's offer: ours is free again.
			if l, ok := ls.byMAC[mac]; ok && !l.bound {
				delete(ls.byMAC, mac)
				delete(ls.byAddr, l.addr)
			}
			return nil, leased, errNoReply
		}
		a := asked
		if !a.IsValid() {
			a = ciaddr // renewing or rebinding
		}
		if !a.IsValid() || !ls.free(a, mac, now) {
			resp, err = ls.answer(req, dhcpv4.MessageTypeNak, netip.Addr{})
			return resp, leased, err
		}
		ls.take(a, mac, now.Add(ls.duration), true)
		resp, err = ls.answer(req, dhcpv4.MessageTypeAck, a)
		return resp, a, err
	case dhcpv4.MessageTypeRelease:
		if l, ok := ls.byMAC[mac]; ok && l.addr == ciaddr {
			delete(ls.byMAC, mac)
			delete(ls.byAddr, l.addr)
		}
		return nil, leased, errNoReply
	case dhcpv4.MessageTypeDecline:
		// Someone else answers at that address: keep it out of the pool
		// for a lease's time.
		if asked.IsValid() && ls.usable(asked) {
			if l, ok := ls.byMAC[mac]; ok && l.addr == asked {
				delete(ls.byMAC, mac)
			}
			ls.byAddr[asked] = &lease{addr: asked, expires: now.Add(ls.duration)}
		}
		return nil, leased, errNoReply
	case dhcpv4.MessageTypeInform:
		resp, err = ls.answer(req, dhcpv4.MessageTypeAck, netip.Addr{})
		return resp, leased, err
	}
	return nil, leased, errNoReply
}

// answer builds a reply of type t giving a (none for a NAK or an answer
// to INFORM) with the LAN's settings.
func (ls *leases) answer(req *dhcpv4.DHCPv4, t dhcpv4.MessageType, a netip.Addr) (*dhcpv4.DHCPv4, error) {
	server := net.IP(ls.server.AsSlice())
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(t),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)),
	}
	if t != dhcpv4.MessageTypeNak {
		mods = append(mods,
			dhcpv4.WithNetmask(net.CIDRMask(ls.subnet.Bits(), 32)),
			dhcpv4.WithRouter(server),
			dhcpv4.WithDNS(server))
	}
	if a.IsValid() {
		mods = append(mods,
			dhcpv4.WithYourIP(a.AsSlice()),
			dhcpv4.WithLeaseTime(uint32(ls.duration/time.Second)))
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return nil, fmt.Errorf("DHCP reply: %w", err)
	}
	return resp, nil
}

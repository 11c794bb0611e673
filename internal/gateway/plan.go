package gateway

import (
	"errors"
	"fmt"
	"strings"
)

// Default ports of the gateway's listeners on the LAN address.
const (
	DefaultTCPPort = 3129 // the transparent listener (Squid's intercept port)
	DefaultDNSPort = 53
)

// ErrNotSupported is returned on systems other than Linux.
var ErrNotSupported = errors.New("gateway: not supported here: it needs Linux (nftables)")

// Plan is what the gateway changes on the machine.
type Plan struct {
	LAN, WAN string // interface names: the devices' side and the internet's
	TCPPort  uint16 // the transparent listener's port on the LAN address
	DNSPort  uint16 // the DNS forwarder's port on the LAN address
	// Forwarding is the IPv4 forwarding value to restore on exit ("0" or
	// "1"), kept in the table for a cleanup after a crash.
	Forwarding string
	// Forwarding6 is IPv6's (net.ipv6.conf.all.forwarding), kept the
	// same way; "" when the gateway leaves IPv6 forwarding alone (the LAN
	// interface has no IPv6 address other than link-local).
	Forwarding6 string
	// DropQUIC drops the LAN's UDP to port 443 instead of forwarding it:
	// QUIC, which the gateway notes but does not relay, so cannot judge.
	// Clients then fall back to TCP, where the proxy's policy applies;
	// pilotwire sets it while it enforces an allowlist or denylist.
	DropQUIC bool
}

// check refuses a plan that cannot be installed, before anything is
// changed.
func (p Plan) check() error {
	if err := p.CheckInterfaces(); err != nil {
		return err
	}
	if p.TCPPort == 0 || p.DNSPort == 0 {
		return errors.New("gateway: listener ports must not be 0")
	}
	if p.Forwarding != "0" && p.Forwarding != "1" {
		return fmt.Errorf("gateway: forwarding value %q is not 0 or 1", p.Forwarding)
	}
	if p.Forwarding6 != "" && p.Forwarding6 != "0" && p.Forwarding6 != "1" {
		return fmt.Errorf("gateway: IPv6 forwarding value %q is not 0 or 1", p.Forwarding6)
	}
	return nil
}

// CheckInterfaces refuses interface names that are missing, the same, or
// that nft would not take (the flags' mistakes).
func (p Plan) CheckInterfaces() error {
	for _, n := range []struct{ flag, name string }{{"--lan", p.LAN}, {"--wan", p.WAN}} {
		switch {
		case n.name == "":
			return fmt.Errorf("%s: no interface given", n.flag)
		case len(n.name) >= 16 || strings.ContainsAny(n.name, "\"/ \t\n\x00"):
			return fmt.Errorf("%s %q: not an interface name", n.flag, n.name)
		}
	}
	if p.LAN == p.WAN {
		return fmt.Errorf("--lan and --wan are both %q: they must be different interfaces", p.LAN)
	}
	return nil
}

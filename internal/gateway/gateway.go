package gateway

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/proxy"
)

// TableName is the nftables table (family inet) that holds every rule
// the gateway installs; nothing else of the machine's ruleset is touched.
const TableName = "pilotwire"

// Config is a gateway to run.
type Config struct {
	// LAN, WAN, TCPPort and DNSPort as in Plan (zero ports: the
	// defaults); Run finds Forwarding itself.
	Plan
	// DNSUpstream is the DNS server the forwarder asks (host:port); if
	// empty, the first name server of /etc/resolv.conf.
	DNSUpstream string
	// Proxy serves the redirected connections (its limits, rules and
	// Record apply); it must not be serving listeners of its own.
	Proxy *proxy.Proxy
	// Record receives the DNS flows and those of the UDP the gateway
	// forwards; it must not block.
	Record func(flow.Flow)
	// DHCP, if not nil, also runs a DHCP server on the LAN interface.
	DHCP *DHCP
	// UDPIdle is how long a noted UDP association may be silent before
	// its flow ends; if zero, DefaultUDPIdle.
	UDPIdle time.Duration
	// ShutdownGrace is how long open connections may finish after the
	// context ends; then they are closed. If zero, 2 seconds.
	ShutdownGrace time.Duration
	// Logger receives the gateway's own errors (a connection whose
	// original destination is unknown). If nil, they are discarded.
	Logger *slog.Logger
}

// Started says what a running gateway listens on and what it found.
type Started struct {
	LANAddr netip.Addr     // the LAN interface's IPv4 address
	TCP     netip.AddrPort // the transparent listener
	DNS     netip.AddrPort // the DNS forwarder (UDP and TCP)
	// LANAddrs6 are the LAN interface's IPv6 addresses other than
	// link-local; the transparent listener and the forwarder listen on
	// each too (same ports), and IPv6 forwarding is on while it runs.
	// Empty: the gateway leaves IPv6 alone.
	LANAddrs6 []netip.Addr
	Upstream  string // the DNS forwarder's upstream
	// Leftover is the table an earlier run left (it was replaced, and
	// its forwarding value is the one restored on exit).
	Leftover Leftover
	Rules    string // the table installed, in nft's syntax
	// DHCP is the pool the DHCP server leases from; invalid when there
	// is none.
	DHCP netip.Prefix
}

// Leftover is what an earlier run left behind: its table, and the
// forwarding values it recorded there ("" when the table did not say, or,
// for IPv6, when that run left IPv6 forwarding alone).
type Leftover struct {
	Found       bool
	Forwarding  string
	Forwarding6 string
}

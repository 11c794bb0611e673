// Package gateway is pilotwire gateway: capture for a device that has no
// proxy setting, from the Linux machine that is its router.
//
// It owns the machine's changes and puts every one back: an nftables
// table of its own ("inet pilotwire", installed through netlink, never by
// running nft) that redirects the LAN's TCP to a transparent listener and
// its DNS to a recording forwarder, and masquerades the rest of the LAN's
// traffic out of the WAN interface, IPv4 and IPv6 alike; and IP
// forwarding, switched on and restored to what it was (IPv6's only when
// the LAN interface has an IPv6 address other than link-local: then the
// listeners listen there too). The table also remembers the old values
// (in a rule's comment), so that the next start after a crash, or
// --cleanup, can remove the table and restore forwarding exactly.
//
// Each redirected connection's original destination comes from the
// socket (SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6) and
// the connection is handed to the
// proxy (proxy.ServeTransparent), which records it like a proxy client's:
// a tunnel named by its SNI, plain HTTP with its full URL, other TCP named
// by the DNS answers the forwarder gave that client (names.go). Every DNS
// query the forwarder passes on is a flow of its own (dns.go).
//
// The UDP it forwards is noted from the LAN side (udp.go): a capture
// (internal/capture) on the LAN interface whose kernel filter passes only
// forwarded unicast UDP other than DNS and DHCP, so relayed TCP costs it
// nothing; the pcap importer's decoder makes a quic flow of a QUIC
// Initial (named by its SNI) and a udp flow of any other association
// (NTP said as such), and the gateway names their servers from its DNS
// answers. Memory stays bounded: an association ends after UDPIdle of
// silence, and the decoder keeps a bounded number at once. With
// Plan.DropQUIC (pilotwire sets it while the proxy enforces a list) the
// table also drops the LAN's UDP to port 443: QUIC goes past the relay,
// where no list could judge it, and clients fall back to TCP; its noted
// flows say so.
//
// With Config.DHCP it also leases addresses to the LAN (dhcp.go, on
// github.com/insomniacslk/dhcp's DHCPv4 server): the gateway's LAN address
// as router and DNS server, one lease per address of the pool, so its
// state is bounded by the pool.
//
// It must not import the stores, the catalog or the timeline: flows go
// to Config.Record.
//
// Linux only: elsewhere Run, Cleanup and Rules return ErrNotSupported.
package gateway

package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h),
// which golang.org/x/sys/unix does not name: SO_ORIGINAL_DST's IPv6
// counterpart, at level SOL_IPV6.
const ip6tSOOriginalDst = 80

// OriginalDst is where a redirected connection was going before the
// redirect: conntrack's original destination (SO_ORIGINAL_DST for IPv4,
// IP6T_SO_ORIGINAL_DST for IPv6, by the family of the socket's own
// address). For a connection that was not redirected it is the socket's
// own address.
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	v6 := addrPortOf(c.LocalAddr()).Addr().Is6()
	var dst netip.AddrPort
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if v6 {
			dst, serr = originalDst6(int(fd))
		} else {
			dst, serr = originalDst4(int(fd))
		}
	}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	return dst, serr
}

func originalDst4(fd int) (netip.AddrPort, error) {
	// The answer is a struct sockaddr_in; IPv6Mreq is merely a 16-byte
	// buffer of the right size.
	mreq, err := unix.GetsockoptIPv6Mreq(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination (SO_ORIGINAL_DST): %w", err)
	}
	b := mreq.Multiaddr
	port := uint16(b[2])<<8 | uint16(b[3])
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), port), nil
}

func originalDst6(fd int) (netip.AddrPort, error) {
	// The answer is a struct sockaddr_in6, the first field of
	// IPv6MTUInfo (the kernel fills the 28 bytes it needs).
	info, err := unix.GetsockoptIPv6MTUInfo(fd, unix.SOL_IPV6, ip6tSOOriginalDst)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination (IP6T_SO_ORIGINAL_DST): %w", err)
	}
	sa := &info.Addr
	if sa.Family != unix.AF_INET6 {
		return netip.AddrPort{}, fmt.Errorf("original destination (IP6T_SO_ORIGINAL_DST): address family %d, want AF_INET6", sa.Family)
	}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port)) // network byte order
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1])), nil
}

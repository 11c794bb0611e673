package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Forwarding loops. A proxy that forwards to itself, directly (an
// --upstream that is its own listener, a CONNECT to its own port) or
// through other proxies (two proxies chained to each other), would turn
// one request into thousands until it runs out of connections. Three
// guards stop that: every request and CONNECT sent on carries a Via header
// with this proxy's random name (RFC 9110 section 7.6.3), and a request
// that already carries it is refused at once; the target rules treat the
// proxy's own listening addresses (and unspecified addresses on its port)
// as a refused target; and CheckUpstream refuses, at start, an upstream
// that is the proxy itself.

// looped reports whether h's Via header names this proxy: the request has
// been through it before.
func (p *Proxy) looped(h http.Header) bool {
	for _, v := range h["Via"] {
		if strings.Contains(v, p.viaName) {
			return true
		}
	}
	return false
}

// addVia adds this proxy to the Via header of a request it forwards,
// received as req.
func (p *Proxy) addVia(h http.Header, req *http.Request) {
	v := p.via11
	if req.ProtoMajor == 1 && req.ProtoMinor == 0 {
		v = p.via10
	}
	if old := h["Via"]; len(old) > 0 {
		// A copy: old may share its array with other header values.
		v = append(old[:len(old):len(old)], v[0])
	}
	h["Via"] = v
}

// isSelfAddr reports whether connecting to ap reaches a listener bound to
// lap. An unspecified target address (0.0.0.0, ::) on the listener's port
// counts as self: connecting to it reaches the local host.
func isSelfAddr(lap, ap netip.AddrPort) bool {
	if lap.Port() != ap.Port() {
		return false
	}
	a, l := ap.Addr().Unmap(), lap.Addr().Unmap()
	switch {
	case a == l, a.IsUnspecified():
		return true
	case !l.IsUnspecified():
		return false
	case a.IsLoopback():
		return true
	}
	return isLocalAddr(a)
}

// isLocalAddr reports whether a is an address of one of this host's
// interfaces.
func isLocalAddr(a netip.Addr) bool {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range ifaddrs {
		if pn, ok := ia.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(pn.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// isSelf reports whether ap is one of the proxy's own listening
// addresses: forwarding there would loop until the connection limit.
func (p *Proxy) isSelf(ap netip.AddrPort) bool {
	// Only listeners on ap's port matter (usually one); they are checked
	// outside the lock, which isLocalAddr's system call must not hold.
	var same [4]netip.AddrPort
	lns := same[:0]
	p.mu.Lock()
	for ln := range p.listeners {
		if lap := addrPort(ln.Addr()); lap.Port() == ap.Port() {
			lns = append(lns, lap)
		}
	}
	p.mu.Unlock()
	for _, lap := range lns {
		if isSelfAddr(lap, ap) {
			return true
		}
	}
	return false
}

// CheckUpstream returns an error if p.Upstream is the proxy's own
// listener at addr, under any spelling (a loopback or unspecified address,
// localhost, an address of this host when addr is a wildcard): every
// request would come back to the proxy. A name that does not resolve now
// is not an error here; it fails when used.
func (p *Proxy) CheckUpstream(ctx context.Context, addr net.Addr) error {
	if p.Upstream == nil {
		return nil
	}
	lap := addrPort(addr)
	port, err := upstreamPort(p.Upstream)
	if err != nil {
		return err
	}
	addrs, err := p.resolve(ctx, p.Upstream.Hostname())
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if isSelfAddr(lap, netip.AddrPortFrom(a.Unmap(), port)) {
			return fmt.Errorf("upstream %s is this proxy's own listener %s: every request would come back to it", p.Upstream.Host, lap)
		}
	}
	return nil
}

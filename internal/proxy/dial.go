package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dialing targets: names resolved, the target rules applied to the
// resolved addresses, and the errors said in one phrase. The upstream
// proxy is dialed in upstreamproxy.go.

// resolve returns the addresses of host: the literal itself, or what the
// Resolve hook or DNS says.
func (p *Proxy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if p.Resolve != nil {
		return p.Resolve(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// dialTarget connects to host:port, refusing addresses the target rules
// forbid. The rules are applied to the resolved addresses, and the
// connection goes to exactly the address that was checked, so a name that
// resolves to a forbidden address (DNS rebinding) is refused too.
func (p *Proxy) dialTarget(ctx context.Context, host string, port int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.dialTimeout())
	defer cancel()
	var addrs []netip.Addr
	var err error
	dst, redirected := ctxDst(ctx)
	if redirected {
		// A redirected connection goes where its client sent it, whatever
		// the name says (transparent.go).
		addrs, port = []netip.Addr{dst.Addr()}, int(dst.Port())
	} else {
		addrs, err = p.resolve(ctx, host)
	}
	if err != nil {
		return nil, &dialError{op: "resolve", target: host, err: err}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	var refused string
	var errs []error
	for _, a := range addrs {
		r := targetRefusal(a, p.AllowPrivateTargets)
		if r == "" && p.isSelf(netip.AddrPortFrom(a.Unmap(), uint16(port))) {
			r = fmt.Sprintf("target %s is this proxy (a loop)", netip.AddrPortFrom(a.Unmap(), uint16(port)))
		}
		if r != "" {
			if refused == "" {
				refused = r
			}
			continue
		}
		nc, err := p.dialAddr(ctx, netip.AddrPortFrom(a.Unmap(), uint16(port)).String(), true)
		if err == nil {
			return nc, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if host != addrs[0].String() && !redirected {
			refused = fmt.Sprintf("%s (%s resolves to it)", refused, host)
		}
		return nil, &refusal{refused}
	}
	return nil, &dialError{op: "dial", target: net.JoinHostPort(host, strconv.Itoa(port)), err: errors.Join(errs...)}
}

// dialError is a failed resolve or dial, said in one phrase that names
// the target and the cause the system gave: "dial
// enrollment.manage.microsoft.com:443: connection refused", not the
// layers of net's error ("dial tcp 1.2.3.4:443: connect: …").
type dialError struct {
	op, target string
	err        error
}

func (e *dialError) Error() string { return e.op + " " + e.target + ": " + cause(e.err) }
func (e *dialError) Unwrap() error { return e.err }

// cause is what err says, without net's wrapping: a system error's text,
// a DNS answer's, or "timed out"; several different causes (one per
// address) are joined with "; ".
func cause(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			if c := cause(e); !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
		return strings.Join(out, "; ")
	}
	var se *os.SyscallError
	var de *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return se.Err.Error()
	case errors.As(err, &de):
		if de.IsTimeout {
			return "timed out"
		}
		return de.Err
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	if oe, ok := err.(*net.OpError); ok && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// dialAddr dials addr, an "ip:port"; check says whether to apply the
// target rules to the socket's address too.
func (p *Proxy) dialAddr(ctx context.Context, addr string, check bool) (net.Conn, error) {
	if p.Dial != nil {
		return p.Dial(ctx, "tcp", addr)
	}
	d := net.Dialer{KeepAlive: 30 * time.Second}
	if check {
		d.Control = p.dialControl
	}
	return d.DialContext(ctx, "tcp", addr)
}

// dialControl checks the address of every socket the default dialer
// connects, a second line behind dialTarget's check.
func (p *Proxy) dialControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil
	}
	if r := targetRefusal(ap.Addr(), p.AllowPrivateTargets); r != "" {
		return &refusal{r}
	}
	return nil
}

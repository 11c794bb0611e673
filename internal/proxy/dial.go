package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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
	addrs, err := p.resolve(ctx, host)
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
		if host != addrs[0].String() {
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

// dialUpstream connects to the upstream proxy. Its address is the
// operator's choice, so the target rules do not apply to it.
func (p *Proxy) dialUpstream(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.dialTimeout())
	defer cancel()
	port, err := upstreamPort(p.Upstream)
	if err != nil {
		return nil, err
	}
	addrs, err := p.resolve(ctx, p.Upstream.Hostname())
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s: %w", p.Upstream.Host, err)
	}
	var errs []error
	for _, a := range addrs {
		nc, err := p.dialAddr(ctx, netip.AddrPortFrom(a.Unmap(), port).String(), false)
		if err == nil {
			return nc, nil
		}
		errs = append(errs, err)
	}
	return nil, &dialError{op: "dial upstream proxy", target: p.Upstream.Host, err: errors.Join(errs...)}
}

// upstreamPort is the port of the upstream proxy at u: 8080 when u names
// none.
func upstreamPort(u *url.URL) (uint16, error) {
	if u.Port() == "" {
		return 8080, nil
	}
	n, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("upstream proxy %s: bad port %q", u.Host, u.Port())
	}
	return uint16(n), nil
}

// dialTunnel opens the server side of a CONNECT tunnel: directly, or with
// a CONNECT through the upstream proxy, carrying the client's Via values
// (via) and this proxy's. early holds bytes the upstream proxy sent after
// its answer (the server spoke first), to pass on.
func (p *Proxy) dialTunnel(ctx context.Context, host string, port int, via []string) (nc net.Conn, early []byte, err error) {
	if p.Upstream == nil {
		nc, err := p.dialTarget(ctx, host, port)
		return nc, nil, err
	}
	// Through the upstream the name is resolved there; still refuse
	// forbidden literal addresses here.
	if a, err := netip.ParseAddr(host); err == nil {
		if r := targetRefusal(a, p.AllowPrivateTargets); r != "" {
			return nil, nil, &refusal{r}
		}
	}
	nc, err = p.dialUpstream(ctx)
	if err != nil {
		return nil, nil, err
	}
	target := net.JoinHostPort(host, strconv.Itoa(port))
	var b strings.Builder
	fmt.Fprintf(&b, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	for _, v := range via {
		fmt.Fprintf(&b, "Via: %s\r\n", v)
	}
	fmt.Fprintf(&b, "Via: %s\r\n", p.via11[0])
	if u := p.Upstream.User; u != nil {
		pass, _ := u.Password()
		fmt.Fprintf(&b, "Proxy-Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
	}
	b.WriteString("\r\n")
	deadline := time.Now().Add(p.dialTimeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = nc.SetDeadline(deadline)
	if _, err := nc.Write([]byte(b.String())); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("upstream proxy %s: %w", p.Upstream.Host, err)
	}
	br := bufio.NewReaderSize(nc, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("upstream proxy %s: %w", p.Upstream.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		nc.Close()
		return nil, nil, fmt.Errorf("upstream proxy %s answered %s", p.Upstream.Host, resp.Status)
	}
	_ = nc.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		early = make([]byte, n)
		_, _ = br.Read(early)
	}
	return nc, early, nil
}

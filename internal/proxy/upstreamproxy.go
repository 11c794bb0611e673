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
	"strconv"
	"strings"
	"time"
)

// The upstream proxy: when Proxy.Upstream is set, every request and tunnel
// leaves through it (CONNECT for tunnels, absolute-form requests for
// plain HTTP and Upgrades), carrying this proxy's Via.

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

package check

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of Options.
const (
	DefaultStepTimeout = 5 * time.Second
	DefaultConcurrency = 32
)

// Options say how to reach the hosts. The zero value checks directly, with
// the system's DNS, network and roots.
type Options struct {
	// Proxy, if set, is the HTTP proxy (http://host:port) to check
	// through, as a device configured with it would go.
	Proxy *url.URL
	// ProxyUser and ProxyPass, if ProxyUser is set, answer a proxy's 407
	// for hosts used in the user's context (never for SYSTEM's: see
	// Target.System).
	ProxyUser, ProxyPass string
	// Resolve, if set, replaces DNS (tests: internal/sim).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Dial, if set, replaces the network dialer; it gets "ip:port".
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// RootCAs, if set, replaces the system's roots for validating chains.
	// Chains are always validated.
	RootCAs *x509.CertPool
	// StepTimeout bounds each step (DNS, TCP, CONNECT, TLS, HTTP). Zero
	// means DefaultStepTimeout.
	StepTimeout time.Duration
	// Concurrency is how many hosts are checked at once. Zero means
	// DefaultConcurrency.
	Concurrency int
	// Progress, if set, is called after each host with the counts so far
	// (from one goroutine at a time).
	Progress func(done, total int)
}

// The steps of a check, in order.
const (
	StepDNS     = "dns"
	StepTCP     = "tcp"     // to the host, or to the proxy
	StepConnect = "connect" // the proxy's answer to CONNECT
	StepTLS     = "tls"
	StepHTTP    = "http"
)

// Step is one stage of reaching a host.
type Step struct {
	Name   string        `json:"name"`
	OK     bool          `json:"ok"`
	Took   time.Duration `json:"-"`
	Detail string        `json:"detail,omitempty"` // what was found: addresses, status, issuer, or the error
}

// Verdict is the outcome for one host, and for a phase (its worst host).
type Verdict string

// Verdicts, from best to worst.
const (
	Pass Verdict = "pass"
	Warn Verdict = "warn" // works from here, but a device may fare worse
	Fail Verdict = "fail"
)

func worse(a, b Verdict) Verdict {
	rank := map[Verdict]int{Pass: 0, Warn: 1, Fail: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// Result is what the check found for one target.
type Result struct {
	Target
	Steps   []Step
	Verdict Verdict
	// Problem is the trouble in one phrase for the network team
	// ("CONNECT refused with 403 by proxy proxy.corp:8080"); "" for a pass.
	Problem string
	// Issuer is the issuer of the certificate the host presented (HTTPS).
	Issuer string
}

// Run checks targets, at most Options.Concurrency at once, and returns
// their results in the order of targets. It returns early only when ctx is
// cancelled (the rest are then failed with the context's error).
func Run(ctx context.Context, targets []Target, o Options) []Result {
	if o.StepTimeout <= 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	results := make([]Result, len(targets))
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for i, t := range targets {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = probe(ctx, t, &o)
			if o.Progress != nil {
				mu.Lock()
				done++
				o.Progress(done, len(targets))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return results
}

// prober checks one target.
type prober struct {
	ctx context.Context
	o   *Options
	r   Result
}

// step records a step that started at start.
func (p *prober) step(name string, start time.Time, ok bool, detail string) {
	p.r.Steps = append(p.r.Steps, Step{Name: name, OK: ok, Took: time.Since(start), Detail: detail})
}

// fail ends the check with verdict v and problem.
func (p *prober) fail(v Verdict, format string, a ...any) Result {
	p.r.Verdict = v
	p.r.Problem = fmt.Sprintf(format, a...)
	return p.r
}

func (p *prober) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, p.o.StepTimeout)
}

func probe(ctx context.Context, t Target, o *Options) Result {
	p := &prober{ctx: ctx, o: o, r: Result{Target: t, Verdict: Pass}}
	var conn net.Conn
	if o.Proxy == nil {
		addrs, ok := p.resolve(t.Host)
		if !ok {
			return p.r
		}
		if conn, ok = p.dialAny(addrs, t.Port, ""); !ok {
			return p.r
		}
	} else {
		var ok bool
		if conn, ok = p.viaProxy(); !ok {
			return p.r
		}
	}
	defer func() { conn.Close() }()
	if t.Scheme == "https" {
		tc, ok := p.handshake(conn)
		if !ok {
			return p.r
		}
		conn = tc
	}
	if t.Scheme == "http" && o.Proxy != nil {
		return p.r // viaProxy made the request itself
	}
	p.request(conn, "/")
	return p.r
}

// resolve is the DNS step.
func (p *prober) resolve(host string) ([]netip.Addr, bool) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, true
	}
	start := time.Now()
	ctx, cancel := p.timeout()
	defer cancel()
	var addrs []netip.Addr
	var err error
	if p.o.Resolve != nil {
		addrs, err = p.o.Resolve(ctx, host)
	} else {
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound, strings.Contains(err.Error(), "no such host"):
			p.step(StepDNS, start, false, "no such host")
			p.fail(Fail, "does not resolve (no such host)")
		case ctx.Err() != nil || errors.As(err, &de) && de.IsTimeout:
			p.step(StepDNS, start, false, "timed out")
			p.fail(Fail, "DNS lookup timed out after %s", p.o.StepTimeout)
		default:
			p.step(StepDNS, start, false, err.Error())
			p.fail(Fail, "DNS lookup failed: %v", err)
		}
		return nil, false
	}
	var s []string
	for _, a := range addrs {
		s = append(s, a.Unmap().String())
	}
	p.step(StepDNS, start, true, strings.Join(s, " "))
	return addrs, true
}

func (p *prober) dial(ctx context.Context, addr string) (net.Conn, error) {
	if p.o.Dial != nil {
		return p.o.Dial(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// dialAny is the TCP step: the addresses in turn (at most 2), each within
// the step timeout. what names the far end in a problem ("proxy …"), ""
// for the host itself.
func (p *prober) dialAny(addrs []netip.Addr, port int, what string) (net.Conn, bool) {
	start := time.Now()
	var err error
	var addr string
	for i, a := range addrs {
		if i == 2 {
			break
		}
		addr = netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
		ctx, cancel := p.timeout()
		var c net.Conn
		c, err = p.dial(ctx, addr)
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil {
			p.step(StepTCP, start, true, addr)
			return c, true
		}
		if timedOut {
			err = context.DeadlineExceeded
		}
	}
	if what == "" {
		what = fmt.Sprintf("port %d", port)
	}
	p.step(StepTCP, start, false, describeErr(err, p.o.StepTimeout))
	p.fail(Fail, "TCP connection to %s (%s): %s", what, addr, describeErr(err, p.o.StepTimeout))
	return nil, false
}

// describeErr says what a network error means, in words.
func describeErr(err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s (packets dropped by a firewall?)", timeout)
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed without an answer"
	}
	return err.Error()
}

// bufConn is a connection whose first bytes were read into a bufio.Reader
// (a proxy's answer to CONNECT): reads drain the buffer first.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// viaProxy connects to the proxy and asks it for the target: a CONNECT
// tunnel for HTTPS (returned), or the plain-HTTP request itself. A 407 is
// answered with the credentials only for user-context hosts.
func (p *prober) viaProxy() (net.Conn, bool) {
	t, proxyHost := p.r.Target, p.o.Proxy.Host
	who := "proxy " + proxyHost
	conn, resp, ok := p.askProxy(false)
	if !ok {
		return nil, false
	}
	if resp.StatusCode == http.StatusProxyAuthRequired {
		conn.Close()
		switch {
		case t.System:
			p.fail(Fail, "%s demands proxy authentication (407); Windows reaches this host as SYSTEM during provisioning, "+
				"which cannot answer an authentication request: let it through %s without authentication", who, who)
			return nil, false
		case p.o.ProxyUser == "":
			p.fail(Warn, "%s demands proxy authentication (407); the signed-in user's credentials may satisfy it "+
				"(give --proxy-auth-file to check with them)", who)
			return nil, false
		}
		if conn, resp, ok = p.askProxy(true); !ok {
			return nil, false
		}
		if resp.StatusCode == http.StatusProxyAuthRequired {
			conn.Close()
			p.fail(Fail, "%s refused the given proxy credentials (407)", who)
			return nil, false
		}
	}
	if t.Scheme == "http" {
		conn.Close()
		switch {
		case resp.StatusCode == http.StatusForbidden:
			p.fail(Fail, "request refused with 403 by %s", who)
		case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout:
			p.fail(Fail, "%s could not reach it (HTTP %d)", who, resp.StatusCode)
		}
		return nil, false
	}
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		p.fail(Fail, "CONNECT refused with %d by %s", resp.StatusCode, who)
		return nil, false
	}
	return conn, true
}

// askProxy dials the proxy and sends the request for the target (CONNECT,
// or an absolute-form GET), with credentials when auth is set, and reads
// the answer's head. It records the tcp and connect (or http) steps.
func (p *prober) askProxy(auth bool) (net.Conn, *http.Response, bool) {
	t, pu := p.r.Target, p.o.Proxy
	host, portStr, err := net.SplitHostPort(pu.Host)
	if err != nil {
		host, portStr = pu.Host, "8080"
	}
	port, _ := strconv.Atoi(portStr)
	addrs, ok := p.resolve(host)
	if !ok {
		p.r.Problem = "the proxy's name: " + p.r.Problem
		return nil, nil, false
	}
	conn, ok := p.dialAny(addrs, port, "proxy "+pu.Host)
	if !ok {
		return nil, nil, false
	}
	target := net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	var req string
	name := StepConnect
	if t.Scheme == "https" {
		req = fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	} else {
		name = StepHTTP
		req = fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\nUser-Agent: pilotwire-check\r\nConnection: close\r\n", target, target)
	}
	if auth {
		cred := base64.StdEncoding.EncodeToString([]byte(p.o.ProxyUser + ":" + p.o.ProxyPass))
		req += "Proxy-Authorization: Basic " + cred + "\r\n"
	}
	req += "\r\n"
	start := time.Now()
	_ = conn.SetDeadline(start.Add(p.o.StepTimeout))
	br := bufio.NewReader(conn)
	var resp *http.Response
	if _, err = io.WriteString(conn, req); err == nil {
		method := http.MethodConnect
		if name == StepHTTP {
			method = http.MethodGet
		}
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
	}
	if err != nil {
		conn.Close()
		what := describeErr(err, p.o.StepTimeout)
		p.step(name, start, false, what)
		if name == StepConnect {
			p.fail(Fail, "proxy %s gave no answer to CONNECT %s: %s", pu.Host, target, what)
		} else {
			p.fail(Fail, "proxy %s gave no answer to GET http://%s/: %s", pu.Host, target, what)
		}
		return nil, nil, false
	}
	if name == StepHTTP {
		// Read the body (bounded), so the time is the whole answer.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	}
	resp.Body.Close()
	_ = conn.SetDeadline(time.Time{})
	ok = resp.StatusCode == http.StatusOK || name == StepHTTP && resp.StatusCode < 400 && resp.StatusCode != 0
	if name == StepHTTP && !ok && resp.StatusCode != http.StatusProxyAuthRequired && resp.StatusCode != http.StatusForbidden &&
		resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusGatewayTimeout {
		ok = true // the server's own answer: it was reached
	}
	detail := resp.Status
	if auth {
		detail += " (with credentials)"
	}
	p.step(name, start, ok, detail)
	return bufConn{Conn: conn, r: br}, resp, true
}

// handshake is the TLS step: SNI, the chain validated against the roots.
func (p *prober) handshake(conn net.Conn) (net.Conn, bool) {
	t := p.r.Target
	cfg := &tls.Config{RootCAs: p.o.RootCAs, NextProtos: []string{"http/1.1"}}
	if _, err := netip.ParseAddr(t.Host); err != nil {
		cfg.ServerName = t.Host
	}
	tc := tls.Client(conn, cfg)
	start := time.Now()
	ctx, cancel := p.timeout()
	defer cancel()
	err := tc.HandshakeContext(ctx)
	if err == nil {
		cs := tc.ConnectionState()
		p.r.Issuer = issuerName(cs.PeerCertificates[0])
		p.step(StepTLS, start, true, fmt.Sprintf("%s, issued by %q", tls.VersionName(cs.Version), p.r.Issuer))
		return tc, true
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) && len(cv.UnverifiedCertificates) > 0 {
		leaf := cv.UnverifiedCertificates[0]
		p.r.Issuer = issuerName(leaf)
		var hn x509.HostnameError
		var ua x509.UnknownAuthorityError
		switch {
		case errors.As(cv.Err, &ua):
			p.step(StepTLS, start, false, fmt.Sprintf("certificate issued by %q, which the trusted roots do not know", p.r.Issuer))
			if t.NoInspect {
				p.fail(Fail, "TLS inspected: the certificate is issued by %q, not a public CA; exempt the host "+
					"from inspection. %s", p.r.Issuer, t.NoInspectWhy)
			} else {
				p.fail(Warn, "TLS inspected: the certificate is issued by %q, not a public CA; a device must trust that CA from "+
					"the first boot (exempting the host from inspection is safer)", p.r.Issuer)
			}
		case errors.As(cv.Err, &hn):
			p.step(StepTLS, start, false, "certificate is not for "+t.Host)
			p.fail(Fail, "the certificate presented is for other names (%s)", strings.Join(leaf.DNSNames, ", "))
		default:
			p.step(StepTLS, start, false, cv.Err.Error())
			p.fail(Fail, "the certificate presented does not validate: %v", cv.Err)
		}
		return nil, false
	}
	what := describeErr(err, p.o.StepTimeout)
	if ctx.Err() != nil {
		what = describeErr(context.DeadlineExceeded, p.o.StepTimeout)
	}
	p.step(StepTLS, start, false, what)
	p.fail(Fail, "TLS handshake failed: %s", what)
	return nil, false
}

// issuerName names a certificate's issuer: its common name, or the whole
// distinguished name when it has none.
func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	return c.Issuer.String()
}

// request is the HTTP step over an open connection (TLS or plain): a
// HEAD for HTTPS hosts, a GET for plain-HTTP ones (certificate hosts
// answer GETs). Any HTTP answer shows the host is reached.
func (p *prober) request(conn net.Conn, path string) {
	t := p.r.Target
	method := http.MethodHead
	if t.Scheme == "http" {
		method = http.MethodGet
	}
	start := time.Now()
	_ = conn.SetDeadline(start.Add(p.o.StepTimeout))
	_, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: pilotwire-check\r\nConnection: close\r\n\r\n", method, path, t.Host)
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	}
	if err != nil {
		what := describeErr(err, p.o.StepTimeout)
		p.step(StepHTTP, start, false, what)
		p.fail(Fail, "%s %s://%s/ got no answer: %s", method, t.Scheme, t.Host, what)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	p.step(StepHTTP, start, true, resp.Status)
}

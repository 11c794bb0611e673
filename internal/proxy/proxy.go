package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/intercept"
)

// Defaults of the Proxy limits.
const (
	DefaultMaxHeaderBytes = 64 << 10
	DefaultHeaderTimeout  = 30 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultMaxConns       = 10000
	DefaultDialTimeout    = 30 * time.Second
	DefaultProgressEvery  = time.Second
)

// Proxy is a forward proxy that records flows. Set its fields, then call
// Serve with one or more listeners; fields must not change after that.
// The zero value serves with the defaults and records nothing.
type Proxy struct {
	// ConnectPorts are the ports CONNECT may reach. If nil, only 443.
	ConnectPorts []int
	// Upstream, if set, is a proxy (http://host:port, optionally with
	// user:pass) that every request and tunnel goes through.
	Upstream *url.URL
	// AllowClients are the networks whose clients are served. If nil,
	// DefaultClients.
	AllowClients []netip.Prefix
	// AuthUser and AuthPass, if AuthUser is set, require Basic proxy
	// authentication (407 otherwise).
	AuthUser, AuthPass string
	// AllowPrivateTargets allows targets on loopback, link-local and
	// unspecified addresses. Cloud metadata addresses stay refused.
	AllowPrivateTargets bool
	// PACFallbackDirect makes the PAC file offer DIRECT after the proxy
	// ("PROXY host:port; DIRECT"): a device that cannot reach the proxy
	// goes straight to the internet, uncaptured, instead of failing.
	PACFallbackDirect bool
	// Devices names clients by address, for Flow.Device. Without an entry,
	// the Basic-auth user name is the device.
	Devices map[netip.Addr]string
	// Policy, if set, is asked about every target (CONNECT and plain or
	// absolute-form HTTP) before it is dialled; a target it does not allow
	// is refused with 403 and recorded as denied with its rule as Reason
	// (pilotwire proxy --enforce). See policy.go.
	Policy func(host string, port int) (allowed bool, rule string)

	// MaxHeaderBytes limits a request's line and headers. If zero,
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// HeaderTimeout limits the time to read a request's line and headers.
	// If zero, DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// IdleTimeout closes a tunnel with no traffic either way, and a
	// keep-alive connection waiting for its next request, after this long.
	// If zero, DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConns limits open client connections; more are refused with 503.
	// If zero, DefaultMaxConns.
	MaxConns int
	// DialTimeout limits connecting to a target. If zero, DefaultDialTimeout.
	DialTimeout time.Duration

	// TLSConfig, if set, is used for the TLS connections the proxy makes
	// itself, for requests in absolute https:// form (tests trust their
	// own CA here). If nil, the system's roots; certificates are always
	// verified.
	TLSConfig *tls.Config
	// Resolve, if set, replaces DNS: it returns the addresses of host.
	// Tests and the demo use it to reach a stand-in internet.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Dial, if set, replaces the network dialer. It is called with
	// resolved "ip:port" addresses only (and the upstream proxy's address).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Record, if set, receives every flow: a tunnel or long download when it
	// opens and again (same Key) when it ends, everything else once. It
	// must not block (flow.Recorder.Record does not).
	Record func(flow.Flow)
	// ProgressEvery is how often open tunnels that carried bytes since
	// are recorded again (same Key) with their counts so far. If zero,
	// DefaultProgressEvery; pilotwire proxy sets its flush interval.
	ProgressEvery time.Duration
	// Logger receives errors of the proxy itself (not of exchanges). If
	// nil, they are discarded.
	Logger *slog.Logger
	// Intercept, if set, turns TLS interception on: each CONNECT tunnel's
	// ClientHello is read before anything is relayed, and the tunnel is
	// either passed through untouched or served by Intercept (see package
	// intercept). Nil, the default: tunnels are never decrypted.
	Intercept *intercept.Interceptor

	initOnce     sync.Once
	progressOnce sync.Once
	keyPrefix    string
	// viaName is this proxy's name in Via headers, "pilotwire-" and a
	// random id; via10 and via11 are the Via values it adds to requests
	// received as HTTP/1.0 and 1.1 (shared, never modified).
	viaName      string
	via10, via11 []string
	transport    *http.Transport
	pool         upPool // server connections of the direct path
	// transportOnly leaves the direct path out: every plain-HTTP request
	// goes through the Transport. TestPlainPaths runs its table through
	// both paths, and BenchmarkPlainGET and bench/proxy (a build with
	// transportonly.go.in) measure what the direct path saves.
	transportOnly bool
	// stopped is closed when Shutdown returns: the progress ticker ends.
	// (What an exchange dials is cancelled through its own context.)
	stopped  chan struct{}
	stopOnce sync.Once

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	shutting  atomic.Bool
	wg        sync.WaitGroup

	connSeq  atomic.Uint64
	open     atomic.Int64
	tunnels  atomic.Int64
	requests atomic.Int64
	recorded atomic.Int64
	started  time.Time
}

// transportOnlyBuild makes every Proxy transportOnly; only the benchmark's
// build (bench/proxy/transportonly.go.in) sets it.
var transportOnlyBuild bool

// Stats is a snapshot of the proxy's activity.
type Stats struct {
	Started     time.Time
	OpenConns   int64 // client connections open now
	OpenTunnels int64 // CONNECT tunnels open now
	Requests    int64 // requests read (HTTP and CONNECT), refusals included
	Flows       int64 // flows passed to Record (re-records included)
}

// Stats returns a snapshot of the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.init()
	return Stats{Started: p.started, OpenConns: p.open.Load(), OpenTunnels: p.tunnels.Load(),
		Requests: p.requests.Load(), Flows: p.recorded.Load()}
}

func (p *Proxy) init() {
	p.initOnce.Do(func() {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		p.keyPrefix = "px-" + id + "-"
		p.viaName = "pilotwire-" + id
		p.via10 = []string{"1.0 " + p.viaName}
		p.via11 = []string{"1.1 " + p.viaName}
		p.started = time.Now()
		p.stopped = make(chan struct{})
		p.transportOnly = p.transportOnly || transportOnlyBuild
		p.listeners = make(map[net.Listener]struct{})
		p.conns = make(map[*conn]struct{})
		p.transport = &http.Transport{
			DialContext:           p.dialForTransport,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 0, // a slow server is the server's business
			ExpectContinueTimeout: time.Second,
			TLSHandshakeTimeout:   p.dialTimeout(),
			DisableCompression:    true, // bytes pass as they are
			ReadBufferSize:        16 << 10,
			WriteBufferSize:       16 << 10,
			// HTTP/2 only ever runs inside tunnels, never between us and a
			// plain-HTTP server.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
		if p.TLSConfig != nil {
			p.transport.TLSClientConfig = p.TLSConfig.Clone()
		}
		if p.Upstream != nil {
			p.transport.Proxy = http.ProxyURL(p.Upstream)
			// The Transport's own CONNECTs (for https:// requests)
			// carry the Via too, so a loop of proxies ends.
			p.transport.ProxyConnectHeader = http.Header{"Via": p.via11}
		}
	})
}

func (p *Proxy) maxHeaderBytes() int {
	if p.MaxHeaderBytes > 0 {
		return p.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func (p *Proxy) headerTimeout() time.Duration {
	if p.HeaderTimeout > 0 {
		return p.HeaderTimeout
	}
	return DefaultHeaderTimeout
}

func (p *Proxy) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (p *Proxy) maxConns() int64 {
	if p.MaxConns > 0 {
		return int64(p.MaxConns)
	}
	return DefaultMaxConns
}

func (p *Proxy) dialTimeout() time.Duration {
	if p.DialTimeout > 0 {
		return p.DialTimeout
	}
	return DefaultDialTimeout
}

func (p *Proxy) connectAllowed(port int) bool {
	if p.ConnectPorts == nil {
		return port == 443
	}
	return slices.Contains(p.ConnectPorts, port)
}

func (p *Proxy) clientAllowed(a netip.Addr) bool {
	nets := p.AllowClients
	if nets == nil {
		nets = DefaultClients
	}
	return allowedClient(nets, a)
}

func (p *Proxy) record(f *flow.Flow) {
	if p.Record == nil {
		return
	}
	p.recorded.Add(1)
	p.Record(*f)
}

func (p *Proxy) logf(msg string, args ...any) {
	if p.Logger != nil {
		p.Logger.Error(msg, args...)
	}
}

// ErrClosed is returned by Serve after Shutdown.
var ErrClosed = errors.New("proxy: closed")

// Serve accepts connections on ln and serves them until ln fails or
// Shutdown is called; then it returns ErrClosed. It may be called for
// several listeners at once.
func (p *Proxy) Serve(ln net.Listener) error {
	p.init()
	if p.Record != nil {
		p.progressOnce.Do(func() { go p.progressLoop() })
	}
	p.mu.Lock()
	if p.shutting.Load() {
		p.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	p.listeners[ln] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.listeners, ln)
		p.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if p.shutting.Load() {
				return ErrClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than give up serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.logf("proxy: accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if p.open.Load() >= p.maxConns() {
			go p.refuseBusy(nc)
			continue
		}
		if !p.serveConn(nc) {
			return ErrClosed
		}
	}
}

// serveConn starts serving a client connection; it reports false (and
// closes nc) when the proxy is shutting down.
func (p *Proxy) serveConn(nc net.Conn) bool {
	c := p.newConn(nc)
	if !p.track(c) {
		return false
	}
	go c.serve()
	return true
}

// track counts c as open, for Shutdown and the limits; it reports false
// (and closes c) when the proxy is shutting down.
func (p *Proxy) track(c *conn) bool {
	p.mu.Lock()
	if p.shutting.Load() {
		p.mu.Unlock()
		c.nc.Close()
		return false
	}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	p.open.Add(1)
	return true
}

// Shutdown stops accepting, closes idle connections, and lets open
// exchanges and tunnels finish until ctx is done; then it closes what is
// left (tunnels end with Reason "proxy shutdown"). It returns once every
// connection is closed and its flow recorded.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.init()
	p.mu.Lock()
	p.shutting.Store(true)
	for ln := range p.listeners {
		ln.Close()
	}
	for c := range p.conns {
		c.closeIfIdle()
	}
	p.mu.Unlock()

	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			// Connections that finished an exchange since are idle now.
			p.mu.Lock()
			for c := range p.conns {
				c.closeIfIdle()
			}
			p.mu.Unlock()
		case <-ctx.Done():
			err = ctx.Err()
			p.mu.Lock()
			for c := range p.conns {
				c.forceClose("proxy shutdown")
			}
			p.mu.Unlock()
			<-done
			break wait
		}
	}
	p.stopOnce.Do(func() { close(p.stopped) })
	p.transport.CloseIdleConnections()
	p.pool.closeIdle(true)
	return err
}

// progressLoop re-records the open tunnels that carried bytes, every
// ProgressEvery, until the proxy has shut down. It reads the tunnels'
// atomic counters: the relays take no lock per byte for it.
func (p *Proxy) progressLoop() {
	every := p.ProgressEvery
	if every <= 0 {
		every = DefaultProgressEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var open []*tunnel
	for {
		select {
		case <-p.stopped:
			return
		case <-tick.C:
		}
		open = open[:0]
		p.mu.Lock()
		for c := range p.conns {
			c.mu.Lock()
			if c.tun != nil {
				open = append(open, c.tun)
			}
			c.mu.Unlock()
		}
		p.mu.Unlock()
		for i, t := range open {
			t.progress()
			open[i] = nil
		}
	}
}

func (p *Proxy) forget(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	p.open.Add(-1)
	p.wg.Done()
}

// refuseBusy answers a connection over the MaxConns limit and records it.
func (p *Proxy) refuseBusy(nc net.Conn) {
	defer nc.Close()
	start := time.Now()
	f := flow.Flow{
		Key:      p.keyPrefix + "busy-" + strconv.FormatUint(p.connSeq.Add(1), 10),
		Start:    start,
		Source:   flow.SourceProxy,
		Kind:     flow.KindTCP,
		Status:   http.StatusServiceUnavailable,
		Decision: flow.DecisionDenied,
		Reason:   fmt.Sprintf("too many open connections (limit %d)", p.maxConns()),
	}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		f.Client, f.ClientPort = ap.Addr().Unmap().String(), int(ap.Port())
	}
	_ = nc.SetWriteDeadline(start.Add(time.Second))
	msg := "pilotwire: too many open connections, try again later\n"
	n, _ := fmt.Fprintf(nc, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nRetry-After: 1\r\n\r\n%s", len(msg), msg)
	f.BytesDown = int64(n)
	f.End = time.Now()
	p.record(&f)
}

// bufio pools: a connection holds a reader and writer only while it reads
// or answers a request, never while a tunnel is open.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	bufPool    = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

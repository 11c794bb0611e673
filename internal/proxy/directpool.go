package proxy

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The direct path: a plain-HTTP request without a body, the common case,
// is written to a pooled keep-alive server connection and its response
// read back on the serving goroutine itself. net/http's Transport runs
// two goroutines per server connection (a reader and a writer) and hands
// every request and response between them and the caller over channels;
// with many small exchanges on two CPUs, those hand-offs cost more than
// the exchange. Requests with a body, and everything through an upstream
// proxy, still go through the Transport (which handles 100-continue,
// streamed uploads and proxy authentication).
//
// The path is kept for what it measurably saves. On 2026-12-04, small
// GETs from 64 keep-alive clients took 30.3–32.5 µs of proxy CPU per
// request with it and 45.2–46.8 µs through the Transport alone, at
// 1.35–1.41× the requests per second and 0.56–0.70× the one-client
// median latency (two runs of bench/proxy/run.sh -skip
// idle,connect,profile -download-reps 3, columns pilotwire and
// pw-transp); in-process, BenchmarkPlainGET/path=direct used 51.6–52.9
// CPU-µs per request (client, proxy and server together) against
// 61.5–63.5 for path=transport, four alternating runs. TestPlainPaths
// runs one table through both paths.

// Limits of the direct path's pool, as in the Transport's settings.
const (
	upIdlePerHost = 256
	upIdleTotal   = 1024
	upIdleTimeout = 90 * time.Second
	upMax1xx      = 5 // informational responses skipped before the real one
	upFreshFor    = time.Second
)

// upConn is a keep-alive connection to a plain-HTTP server.
type upConn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	// upstream: a connection to the upstream proxy (for an Upgrade),
	// never pooled with the servers' connections.
	upstream bool
}

// upPool holds idle server connections by "host:port" (host as the client
// named it, lower case).
type upPool struct {
	mu     sync.Mutex
	idle   map[string][]*upConn
	n      int
	closed bool
	// idleTimeout, if set (by tests), replaces upIdleTimeout.
	idleTimeout time.Duration
	// sweep closes expired idle connections while there are any, so that
	// connections to servers never asked again do not stay open.
	sweep *time.Timer
}

func (u *upPool) timeout() time.Duration {
	if u.idleTimeout > 0 {
		return u.idleTimeout
	}
	return upIdleTimeout
}

// get returns an idle connection to key, or nil.
func (u *upPool) get(key string) *upConn {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	for {
		l := u.idle[key]
		if len(l) == 0 {
			return nil
		}
		uc := l[len(l)-1]
		l[len(l)-1] = nil
		u.idle[key] = l[:len(l)-1]
		u.n--
		if now.Sub(uc.idleAt) < u.timeout() {
			return uc
		}
		uc.nc.Close() // the server has likely given up on it
	}
}

// put keeps uc for reuse, or closes it when the pool is full or closed.
func (u *upPool) put(key string, uc *upConn) {
	now := time.Now()
	uc.idleAt = now
	u.mu.Lock()
	l := u.idle[key]
	// The oldest are at the front; drop the expired ones.
	for len(l) > 0 && now.Sub(l[0].idleAt) >= u.timeout() {
		l[0].nc.Close()
		l[0] = nil
		l = l[1:]
		u.n--
	}
	if u.closed || u.n >= upIdleTotal || len(l) >= upIdlePerHost {
		u.idle[key] = l
		u.mu.Unlock()
		uc.nc.Close()
		return
	}
	if u.idle == nil {
		u.idle = make(map[string][]*upConn)
	}
	u.idle[key] = append(l, uc)
	u.n++
	if u.sweep == nil {
		u.sweep = time.AfterFunc(u.timeout(), u.closeExpired)
	}
	u.mu.Unlock()
}

// closeExpired closes the connections idle for upIdleTimeout or longer,
// and comes back later while any are left.
func (u *upPool) closeExpired() {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, l := range u.idle {
		i := 0
		for i < len(l) && now.Sub(l[i].idleAt) >= u.timeout() {
			l[i].nc.Close()
			l[i] = nil
			i++
		}
		u.n -= i
		if i == len(l) {
			delete(u.idle, k)
		} else {
			u.idle[k] = l[i:]
		}
	}
	if u.n > 0 && !u.closed && u.sweep != nil {
		u.sweep.Reset(u.timeout() / 2)
	} else {
		u.sweep = nil
	}
}

// closeIdle closes every idle connection; with stop, the pool keeps none
// from now on.
func (u *upPool) closeIdle(stop bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = u.closed || stop
	if u.sweep != nil {
		u.sweep.Stop()
		u.sweep = nil
	}
	for k, l := range u.idle {
		for _, uc := range l {
			uc.nc.Close()
		}
		delete(u.idle, k)
	}
	u.n = 0
}

// upKey is the pool key of host and port; a connection's requests mostly
// go to one server, so the last key is kept.
func (c *conn) upKey(host string, port int) string {
	if host != c.upHost || port != c.upPort || c.upKeyStr == "" {
		c.upHost, c.upPort = host, port
		c.upKeyStr = net.JoinHostPort(host, strconv.Itoa(port))
		if c.dst.IsValid() {
			// A redirected connection's server is its original
			// destination, not what the name resolves to.
			c.upKeyStr += "@" + c.dst.String()
		}
	}
	return c.upKeyStr
}

// isReplayable reports whether a bodiless request may be sent again after
// a reused connection failed (RFC 9110 section 9.2.2).
func isReplayable(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// roundTripDirect sends out, which has no body, to host:port over a pooled
// or new connection and reads the response head. A request that fails on
// a reused connection (the server closed it while idle) is sent once more
// on a new one if its method allows; one whose method does not is sent on
// a pooled connection only if that was idle for less than upFreshFor. The
// caller must call serverDone.
func (x *exchange) roundTripDirect(out *http.Request) (*http.Response, *upConn, error) {
	c, p, host, port := x.c, x.c.p, x.f.Host, x.f.Port
	key := c.upKey(host, port)
	replayable := isReplayable(out.Method)
	for attempt := 0; ; attempt++ {
		var uc *upConn
		if attempt == 0 {
			uc = p.pool.get(key)
		}
		if uc != nil && !replayable && time.Since(uc.idleAt) > upFreshFor {
			// A request that cannot be sent twice goes only on a
			// connection idle so briefly that the server has not closed
			// it for idleness (servers wait seconds, at the least).
			uc.nc.Close()
			uc = nil
		}
		reused := uc != nil
		if uc == nil {
			nc, err := p.dialTarget(x.context(), host, port)
			if err != nil {
				return nil, nil, err
			}
			uc = &upConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 4<<10)}
		}
		if !x.setServer(uc) {
			uc.nc.Close()
			return nil, nil, net.ErrClosed
		}
		resp, err := uc.send(out)
		if err == nil {
			return resp, uc, nil
		}
		x.setServer(nil)
		uc.nc.Close()
		if !reused || !replayable || x.cancelled() {
			return nil, nil, err
		}
	}
}

// send writes out and reads the response head, skipping informational
// responses other than 101.
func (uc *upConn) send(out *http.Request) (*http.Response, error) {
	write := out.Write
	if uc.upstream {
		write = out.WriteProxy // absolute form, for a proxy
	}
	err := write(uc.bw)
	if err == nil {
		err = uc.bw.Flush()
	}
	if err != nil {
		return nil, err
	}
	for range upMax1xx + 1 {
		resp, err := http.ReadResponse(uc.br, out)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
	return nil, errors.New("too many informational (1xx) responses")
}

// serverDone ends an exchange on the direct path: uc goes back to the pool if
// the response body was read to its end and both sides keep it alive;
// else it is closed. It must be called before resp.Body.Close, which
// would otherwise read what is left of the body.
func (x *exchange) serverDone(uc *upConn, resp *http.Response, reusable bool) {
	open := x.setServer(nil)
	if reusable && open && !uc.upstream && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols && uc.br.Buffered() == 0 {
		x.c.p.pool.put(x.c.upKeyStr, uc)
		return
	}
	uc.nc.Close()
}

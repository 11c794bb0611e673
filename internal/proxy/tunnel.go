package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// burstWindow is how long a relay keeps copying (on Linux: holds a splice
// pipe) after the last byte before it goes back to waiting, holding nothing.
const burstWindow = 200 * time.Millisecond

// How a tunnel ended, for Flow.Reason.
const (
	endClient   = "client closed"
	endServer   = "server closed"
	endIdle     = "idle timeout"
	endError    = "error"
	endShutdown = "proxy shutdown"
)

var errIdle = errors.New("idle timeout")

// tunnel is an open CONNECT tunnel.
type tunnel struct {
	c       *conn
	server  net.Conn
	f       *flow.Flow
	plain   bool         // an Upgrade, not a CONNECT: no ClientHello to read
	pending []byte       // client bytes read with the CONNECT head
	early   []byte       // server bytes read with the upstream proxy's answer
	up      atomic.Int64 // client → server payload bytes
	down    atomic.Int64 // server → client payload bytes
	last    atomic.Int64 // time of the last byte either way, Unix ns

	// mu guards reason and err, and *f once the tunnel runs: the progress
	// ticker copies f while the relay sets what the ClientHello said and,
	// at the end, how the tunnel ended. Every record of the flow is made
	// under mu, so that a progress record never lands after the final one.
	mu     sync.Mutex
	reason string
	err    string
	ended  bool     // the final record was made
	shown  [2]int64 // bytes up and down of the last record

	// stop cancels an intercepted tunnel's context (forceClose); guarded
	// by c.mu.
	stop context.CancelFunc
}

// end sets how the tunnel ended; the first call wins.
func (t *tunnel) end(reason string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reason != "" {
		return
	}
	t.reason = reason
	if err != nil {
		t.err = err.Error()
	}
}

// count sets the flow's byte counts to the tunnel's so far: the bytes
// relayed (for an Upgrade, after the heads its exchange counted).
func (t *tunnel) count() {
	t.f.BytesUp, t.f.BytesDown = t.up.Load(), t.down.Load()
}

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

// openTunnel serves a CONNECT request up to the proxy's 200: dial, answer,
// and hand the bytes the client already sent to the tunnel. It returns nil
// if the tunnel did not open (the flow is then recorded).
func (x *exchange) openTunnel() *tunnel {
	c, p, f := x.c, x.c.p, &x.f
	server, early, err := p.dialTunnel(x.context(), f.Host, f.Port, x.req.Header["Via"])
	if err != nil {
		var r *refusal
		if errors.As(err, &r) {
			x.refuse(http.StatusForbidden, r.reason, nil)
			return nil
		}
		// The tunnel never opened: no Reason (how it ended), only the
		// one phrase that says why.
		c.writeError(http.StatusBadGateway, err.Error(), nil, true)
		f.Status = http.StatusBadGateway
		f.Error = err.Error()
		x.finish()
		return nil
	}
	f.Status = http.StatusOK
	c.bw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
	if err := c.bw.Flush(); err != nil {
		server.Close()
		f.Error = "writing to client: " + err.Error()
		f.Reason = endError
		x.finish()
		return nil
	}
	t := &tunnel{c: c, server: server, f: f, early: early}
	return c.startTunnel(t)
}

// startTunnel makes t the connection's tunnel, for serve to run; it
// returns nil (with the flow recorded) if the proxy shut the connection
// meanwhile.
func (c *conn) startTunnel(t *tunnel) *tunnel {
	// Bytes the client sent right after its request are the start of the
	// tunnel; then the buffers go back to their pools, since a tunnel may
	// stay open, idle, for a long time.
	if n := c.br.Buffered(); n > 0 {
		t.pending = make([]byte, n)
		_, _ = io.ReadFull(c.br, t.pending)
	}
	c.releaseBuffers()
	t.touch()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		t.server.Close()
		t.f.Reason = endShutdown
		t.count()
		t.f.End = time.Now()
		c.p.record(t.f)
		return nil
	}
	c.tun = t
	c.state = stateTunnel
	return t
}

// run relays the tunnel's bytes both ways, unchanged, while reading the
// ClientHello as it passes; then it records the flow and closes the
// connection. A CONNECT's runs on a goroutine of its own, so that the
// stack the request parsing grew is not kept for the tunnel's lifetime;
// it keeps its own frames small (the deeper work, such as recording,
// runs in steps) so that the two parked goroutines of an idle tunnel fit
// in small stacks. The first bytes each way are relayed inline, before
// anything else: a step is a hand-off, latency the client sees while the
// tunnel opens (the shallow stack a small write grows is shrunk by the
// garbage collector once the tunnel waits).
func (t *tunnel) run() {
	intercepting := t.c.p.Intercept != nil && !t.plain
	var sent []byte
	if intercepting {
		step(t.opened)
		if t.interceptOrPass() {
			step(t.closed)
			return
		}
	} else {
		sent = t.sendPending()
	}
	downDone := make(chan struct{})
	go t.relayDown(downDone)
	if !intercepting {
		// The record after the first bytes are on their way and the
		// server's answer is awaited: it is not in their way there.
		step(t.opened)
	}
	t.relayUp(sent)
	<-downDone
	step(t.closed)
}

// sendPending writes the client's bytes read with its request (or, on a
// redirected connection, peeked) to the server at once, and returns them
// (a ClientHello's start, for readHello): the server waits for them, and
// everything else at the tunnel's start (its record, the second
// goroutine) may first wake another thread, which on a machine with few
// CPUs is latency the client sees. A failed write ends the tunnel (the
// relay then finds both connections closed).
func (t *tunnel) sendPending() []byte {
	sent := t.pending
	t.pending = nil
	if len(sent) == 0 {
		return nil
	}
	n, err := t.server.Write(sent)
	t.up.Add(int64(n))
	if err != nil {
		t.finish(fmt.Errorf("writing to server: %w", err), "", nil)
	}
	return sent
}

// opened counts and records the open tunnel: visible while it lasts.
func (t *tunnel) opened() {
	t.c.p.tunnels.Add(1)
	t.mu.Lock()
	t.recordLocked()
	t.mu.Unlock()
}

// recordLocked records the flow with the bytes relayed so far. t.mu must
// be held.
func (t *tunnel) recordLocked() {
	t.count()
	t.shown = [2]int64{t.f.BytesUp, t.f.BytesDown}
	t.c.p.record(t.f)
}

// progress records the open tunnel again if it carried bytes since its
// last record, so that the store shows what a long tunnel carried so far.
// The proxy's progress ticker calls it; the relay only adds to atomic
// counters.
func (t *tunnel) progress() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ended && (t.up.Load() != t.shown[0] || t.down.Load() != t.shown[1]) {
		t.recordLocked()
	}
}

// relayUp relays client to server, reading the ClientHello on the way;
// sent is what run sent already.
func (t *tunnel) relayUp(sent []byte) {
	if more := t.sendPending(); more != nil { // left by an interception that passed the tunnel on
		sent = more
	}
	if !t.plain && !t.readHello(t.f, sent) {
		return
	}
	err := t.pipe(t.server, t.c.nc, &t.up)
	step(func() { t.finish(err, endClient, t.server) })
}

// closed records the ended tunnel and closes both connections.
func (t *tunnel) closed() {
	c, p, f := t.c, t.c.p, t.f
	t.mu.Lock()
	f.Reason, f.Error = t.reason, t.err
	f.End = time.Now()
	t.ended = true
	t.recordLocked()
	t.mu.Unlock()
	t.server.Close()
	c.close()
	p.tunnels.Add(-1)
	p.forget(c)
}

// relayDown relays server to client until that direction ends, then
// closes done.
func (t *tunnel) relayDown(done chan struct{}) {
	if len(t.early) > 0 {
		var err error
		step(func() {
			var n int
			n, err = t.c.nc.Write(t.early)
			t.down.Add(int64(n))
			t.early = nil
			if err != nil {
				t.end(endError, fmt.Errorf("writing to client: %w", err))
				t.closeBoth()
			}
		})
		if err != nil {
			close(done)
			return
		}
	}
	err := t.pipe(t.c.nc, t.server, &t.down)
	step(func() { t.finish(err, endServer, t.c.nc) })
	close(done)
}

// finish handles the end of one direction: at EOF, pass the half-close on
// (the other direction goes on); on an error or idle timeout close both.
func (t *tunnel) finish(err error, eofReason string, dst net.Conn) {
	switch {
	case err == nil:
		t.end(eofReason, nil)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			if cw.CloseWrite() == nil {
				return
			}
		}
		t.closeBoth()
	case errors.Is(err, errIdle):
		t.end(endIdle, nil)
		t.closeBoth()
	default:
		t.end(endError, err)
		t.closeBoth()
	}
}

func (t *tunnel) closeBoth() {
	t.c.nc.Close()
	t.server.Close()
}

// step runs fn on a short-lived goroutine and waits for it. A tunnel's two
// long-lived goroutines spend nearly all their time parked, waiting for
// data; doing the deeper work (copying, parsing, recording) on a goroutine
// that then exits keeps their stacks at the minimum, which is most of what
// an idle tunnel costs.
func step(fn func()) {
	if !waitsForData {
		fn()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// readHello relays the client's first bytes while collecting them, until
// they hold a whole ClientHello or cannot be one, and records what it
// says; hello is what sendPending sent already. It reports whether the up
// direction should go on.
func (t *tunnel) readHello(f *flow.Flow, hello []byte) bool {
	p := t.c.p
	var done, ok bool
	step(func() { done, ok = t.parseHello(f, hello) })
	for !done {
		// Wait for data without holding a buffer: the tunnel may be idle.
		idle := p.idleTimeout()
		_ = t.c.nc.SetReadDeadline(time.Unix(0, t.last.Load()).Add(idle))
		if err := waitReadable(t.c.nc); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, t.last.Load())) < idle {
				continue
			}
			step(func() { t.finish(readErr(err), endClient, t.server) })
			return false
		}
		step(func() { done, ok = t.readHelloMore(f, &hello) })
	}
	return ok
}

// readHelloMore reads what the client sent, relays it and tries the hello
// again; it reports whether the hello phase is over and, if so, whether
// the up direction should go on.
func (t *tunnel) readHelloMore(f *flow.Flow, hello *[]byte) (done, ok bool) {
	idle := t.c.p.idleTimeout()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	n, err := t.c.nc.Read(*bp)
	if n > 0 {
		t.touch()
		*hello = append(*hello, (*bp)[:n]...)
		m, werr := t.server.Write((*bp)[:n])
		t.up.Add(int64(m))
		if werr != nil {
			t.finish(fmt.Errorf("writing to server: %w", werr), "", nil)
			return true, false
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, t.last.Load())) < idle {
			return false, false
		}
		if err == io.EOF {
			err = nil
		}
		t.finish(readErr(err), endClient, t.server)
		return true, false
	}
	return t.parseHello(f, *hello)
}

// parseHello tries the bytes collected so far; when they are a whole
// ClientHello or cannot become one, it records what it learnt and reports
// done.
func (t *tunnel) parseHello(f *flow.Flow, hello []byte) (done, ok bool) {
	limit := MaxClientHello + 4<<10 // the hello and its record headers
	h, err := ParseClientHello(hello)
	if errors.Is(err, ErrNeedMore) && len(hello) < limit {
		return false, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var note string
	switch {
	case err == nil:
		f.SNI = h.SNI
		f.ALPN = h.ALPNList()
		f.TLSVersion = VersionName(h.Version)
		if h.SNI != "" && h.SNI != f.Host {
			note = fmt.Sprintf("SNI %s differs from CONNECT host %s", h.SNI, f.Host)
		}
	case errors.Is(err, ErrNotTLS):
		note = "tunnel does not start with a TLS ClientHello"
	case !errors.Is(err, ErrNeedMore):
		note = "malformed ClientHello: " + err.Error()
	default:
		note = fmt.Sprintf("ClientHello over %d bytes", limit)
	}
	// With interception on, the Note may say already why the tunnel was
	// not intercepted.
	switch {
	case f.Note == "":
		f.Note = note
	case note != "":
		f.Note = note + "; " + f.Note
	}
	t.recordLocked()
	return true, true
}

// readErr turns a deadline error into errIdle.
func readErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errIdle
	}
	return err
}

// pipe copies src to dst until src ends (nil), the tunnel is idle in both
// directions for the idle timeout (errIdle), or an error. Between bursts it
// waits for src to become readable holding no buffer (and, on Linux, no
// splice pipe), so that an idle tunnel costs two sockets and two parked
// goroutines.
func (t *tunnel) pipe(dst, src net.Conn, n *atomic.Int64) error {
	idle := t.c.p.idleTimeout()
	first := true
	for {
		last := time.Unix(0, t.last.Load())
		if time.Since(last) >= idle {
			return errIdle
		}
		if waitsForData {
			_ = src.SetReadDeadline(last.Add(idle))
			if err := waitReadable(src); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					continue // maybe the other direction was busy meanwhile
				}
				return err
			}
			// copyBurst sets the burst's deadline when it has to wait.
		} else {
			_ = src.SetReadDeadline(last.Add(idle))
		}
		var m int64
		var err error
		if first {
			// The first burst (a request, an answer) on this goroutine: a
			// step's hand-off is latency at the tunnel's start, and the
			// stack it may grow is shrunk by the garbage collector while
			// the tunnel waits.
			m, err = copyBurst(dst, src)
			first = false
		} else {
			step(func() { m, err = copyBurst(dst, src) })
		}
		if m > 0 {
			n.Add(m)
			t.touch()
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded), err == errBurstOver:
			continue
		default:
			return err
		}
	}
}

package proxy

import (
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
	c      *conn
	server net.Conn
	up     atomic.Int64 // client → server payload bytes
	down   atomic.Int64 // server → client payload bytes
	last   atomic.Int64 // time of the last byte either way, Unix ns

	mu     sync.Mutex
	reason string
	err    string
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

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

// tunnel serves a CONNECT request: dial, answer 200, then relay bytes both
// ways unchanged while reading the ClientHello as it passes.
func (c *conn) tunnel(req *http.Request, f *flow.Flow, up0, down0 int64) {
	p := c.p
	server, early, err := p.dialTunnel(p.ctx, f.Host, f.Port)
	if err != nil {
		var r *refusal
		if errors.As(err, &r) {
			c.refuse(req, f, up0, down0, http.StatusForbidden, r.reason, nil)
			return
		}
		c.writeError(http.StatusBadGateway, err.Error(), nil, true)
		f.Status = http.StatusBadGateway
		f.Error = err.Error()
		f.Reason = endError
		f.End = time.Now()
		p.record(f)
		return
	}
	defer server.Close()
	f.Status = http.StatusOK
	c.bw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
	if err := c.bw.Flush(); err != nil {
		f.Error = "writing to client: " + err.Error()
		f.Reason = endError
		f.End = time.Now()
		p.record(f)
		return
	}
	// Bytes the client sent right after its CONNECT are the start of the
	// tunnel; then the buffers go back to their pools, since a tunnel may
	// stay open, idle, for a long time.
	var pending []byte
	if n := c.br.Buffered(); n > 0 {
		pending = make([]byte, n)
		_, _ = io.ReadFull(c.br, pending)
	}
	c.releaseBuffers()

	t := &tunnel{c: c, server: server}
	t.touch()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		f.Reason = endShutdown
		f.End = time.Now()
		p.record(f)
		return
	}
	c.tun = t
	c.state = stateTunnel
	c.mu.Unlock()
	p.tunnels.Add(1)
	defer p.tunnels.Add(-1)
	p.record(f) // open: visible while it lasts

	downDone := make(chan struct{})
	go func() {
		defer close(downDone)
		if len(early) > 0 {
			n, err := c.nc.Write(early)
			t.down.Add(int64(n))
			if err != nil {
				t.end(endError, fmt.Errorf("writing to client: %w", err))
				t.closeBoth()
				return
			}
		}
		err := t.pipe(c.nc, server, &t.down)
		t.finish(err, endServer, c.nc)
	}()
	if t.readHello(f, pending) {
		err = t.pipe(server, c.nc, &t.up)
		t.finish(err, endClient, server)
	}
	<-downDone

	t.mu.Lock()
	f.Reason, f.Error = t.reason, t.err
	t.mu.Unlock()
	f.BytesUp = t.up.Load()
	f.BytesDown = t.down.Load()
	f.End = time.Now()
	p.record(f)
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

// readHello relays the client's first bytes while collecting them, until
// they hold a whole ClientHello or cannot be one, and records what it
// says. It reports whether the up direction should go on.
func (t *tunnel) readHello(f *flow.Flow, pending []byte) bool {
	p := t.c.p
	hello := pending
	if len(pending) > 0 {
		n, err := t.server.Write(pending)
		t.up.Add(int64(n))
		if err != nil {
			t.finish(fmt.Errorf("writing to server: %w", err), "", nil)
			return false
		}
	}
	var bp *[]byte
	defer func() {
		if bp != nil {
			bufPool.Put(bp)
		}
	}()
	limit := MaxClientHello + 4<<10 // the hello and its record headers
	for {
		h, err := ParseClientHello(hello)
		if err == nil {
			f.SNI = h.SNI
			f.ALPN = h.ALPNList()
			f.TLSVersion = VersionName(h.Version)
			if h.SNI != "" && h.SNI != f.Host {
				f.Note = fmt.Sprintf("SNI %s differs from CONNECT host %s", h.SNI, f.Host)
			}
			p.record(f)
			return true
		}
		if !errors.Is(err, ErrNeedMore) {
			if errors.Is(err, ErrNotTLS) {
				f.Note = "tunnel does not start with a TLS ClientHello"
			} else {
				f.Note = "malformed ClientHello: " + err.Error()
			}
			p.record(f)
			return true
		}
		if len(hello) >= limit {
			f.Note = fmt.Sprintf("ClientHello over %d bytes", limit)
			p.record(f)
			return true
		}
		// Wait for data without holding a buffer: the tunnel may be idle.
		idle := p.idleTimeout()
		_ = t.c.nc.SetReadDeadline(time.Unix(0, t.last.Load()).Add(idle))
		if err := waitReadable(t.c.nc); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, t.last.Load())) < idle {
				continue
			}
			t.finish(readErr(err, idle), endClient, t.server)
			return false
		}
		if bp == nil {
			bp = bufPool.Get().(*[]byte)
		}
		n, err := t.c.nc.Read(*bp)
		if n > 0 {
			t.touch()
			hello = append(hello, (*bp)[:n]...)
			m, werr := t.server.Write((*bp)[:n])
			t.up.Add(int64(m))
			if werr != nil {
				t.finish(fmt.Errorf("writing to server: %w", werr), "", nil)
				return false
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, t.last.Load())) < idle {
				continue
			}
			if err == io.EOF {
				err = nil
			}
			t.finish(readErr(err, idle), endClient, t.server)
			return false
		}
	}
}

// readErr turns a deadline error into errIdle.
func readErr(err error, _ time.Duration) error {
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
			_ = src.SetReadDeadline(time.Now().Add(burstWindow))
		} else {
			_ = src.SetReadDeadline(last.Add(idle))
		}
		m, err := copyBurst(dst, src)
		if m > 0 {
			n.Add(m)
			t.touch()
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		default:
			return err
		}
	}
}

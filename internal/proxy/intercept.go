package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/intercept"
)

// TLS interception of CONNECT tunnels, when Proxy.Intercept is set: the
// tunnel's ClientHello is read (not relayed), the Interceptor decides,
// and the tunnel is either relayed untouched as always (with the
// ClientHello as its first bytes) or served by the Interceptor.

// interceptOrPass runs before a CONNECT tunnel's relay when interception
// is on. It reports whether it served the tunnel itself (intercepted, or
// the client left before its ClientHello was whole); otherwise t.pending
// holds what the client sent, and the tunnel is relayed as usual.
func (t *tunnel) interceptOrPass() bool {
	c, p, f := t.c, t.c.p, t.f
	hello := t.pending
	t.pending = nil
	limit := MaxClientHello + 4<<10 // the hello and its record headers
	h, perr := ParseClientHello(hello)
	// A client that sends nothing for the header timeout may be waiting
	// for a server that speaks first: then it is tunnelled, as without
	// interception.
	deadline := time.Now().Add(p.headerTimeout())
	var buf []byte
	for errors.Is(perr, ErrNeedMore) && len(hello) < limit {
		if buf == nil {
			buf = make([]byte, 4<<10)
		}
		_ = c.nc.SetReadDeadline(deadline)
		n, err := c.nc.Read(buf)
		if n > 0 {
			t.touch()
			hello = append(hello, buf[:n]...)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			// Gone before its ClientHello was whole: nothing reached the
			// server, but the bytes came from the client.
			t.up.Add(int64(len(hello)))
			if err == io.EOF {
				t.end(endClient, nil)
			} else {
				t.end(endError, err)
			}
			return true
		}
		h, perr = ParseClientHello(hello)
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	if perr != nil {
		t.pending = hello // not TLS, or not yet: readHello says which
		return false
	}
	d := p.Intercept.Decide(f.Host, h.SNI)
	if !d.Intercept {
		t.mu.Lock()
		f.Note = "not intercepted: " + d.Why
		t.mu.Unlock()
		t.pending = hello
		return false
	}

	// A redirected connection's server connections, the first and any
	// the interception opens again, go to its original destination.
	ctx, cancel := context.WithCancel(withDst(context.Background(), c.dst))
	defer cancel()
	c.mu.Lock()
	t.stop = cancel
	if c.closed {
		cancel()
	}
	c.mu.Unlock()
	t.mu.Lock()
	f.SNI, f.ALPN, f.TLSVersion = h.SNI, h.ALPNList(), VersionName(h.Version)
	if h.SNI != "" && h.SNI != f.Host {
		f.Note = fmt.Sprintf("SNI %s differs from CONNECT host %s", h.SNI, f.Host)
	}
	t.recordLocked()
	tunnelFlow := *f
	t.mu.Unlock()

	var roots *x509.CertPool
	if p.TLSConfig != nil {
		roots = p.TLSConfig.RootCAs
	}
	host, port := f.Host, f.Port
	res := p.Intercept.Serve(ctx, intercept.Conn{
		Client: &interceptedConn{Conn: c.nc, t: t, pre: hello},
		Server: t.server,
		Redial: func(ctx context.Context) (net.Conn, error) {
			nc, early, err := p.dialTunnel(ctx, host, port, nil)
			if err == nil && len(early) > 0 {
				nc.Close()
				return nil, fmt.Errorf("upstream proxy: %s:%d spoke before the TLS handshake", host, port)
			}
			return nc, err
		},
		Host: host, Port: port, SNI: h.SNI, ALPN: h.ALPN,
		RootCAs: roots,
		Tunnel:  tunnelFlow,
		Record:  func(fl flow.Flow) { p.record(&fl) },
		Refused: func(why string) {
			t.mu.Lock()
			f.Decision = flow.DecisionDenied
			t.mu.Unlock()
			t.end(why, nil)
		},
		HandshakeTimeout: p.headerTimeout(),
		HeaderTimeout:    p.headerTimeout(),
		IdleTimeout:      p.idleTimeout(),
	})
	if res.Fallback {
		t.mu.Lock()
		f.Note = "not intercepted: " + res.Err.Error()
		t.mu.Unlock()
		t.pending = hello
		return false
	}
	t.mu.Lock()
	note := fmt.Sprintf("intercepted (%s), %d requests", res.Protocol, res.Requests)
	if res.Requests == 1 {
		note = fmt.Sprintf("intercepted (%s), 1 request", res.Protocol)
	}
	if res.Protocol == "" {
		note = "intercepted"
	}
	if f.Note != "" {
		note = f.Note + "; " + note
	}
	f.Note = note
	if res.Refused != "" {
		f.Decision = flow.DecisionDenied
	}
	t.mu.Unlock()
	switch {
	case res.Refused != "":
		t.end(res.Refused, nil)
	case res.Learned != nil:
		t.end(fmt.Sprintf("client refused the minted certificate; %s is passed through from now on", res.Learned.Host), errors.New(res.Learned.Reason))
	case res.Err != nil:
		t.end(endError, res.Err)
	default:
		t.end(endClient, nil)
	}
	return true
}

// interceptedConn is the client's side of an intercepted tunnel: it
// replays the ClientHello read to decide, then reads the connection,
// counting the bytes both ways into the tunnel's flow (so that its
// progress records show them).
type interceptedConn struct {
	net.Conn
	t   *tunnel
	pre []byte
}

func (ic *interceptedConn) Read(b []byte) (int, error) {
	if len(ic.pre) > 0 {
		n := copy(b, ic.pre)
		ic.pre = ic.pre[n:]
		ic.t.up.Add(int64(n))
		return n, nil
	}
	n, err := ic.Conn.Read(b)
	if n > 0 {
		ic.t.up.Add(int64(n))
		ic.t.touch()
	}
	return n, err
}

func (ic *interceptedConn) Write(b []byte) (int, error) {
	n, err := ic.Conn.Write(b)
	if n > 0 {
		ic.t.down.Add(int64(n))
		ic.t.touch()
	}
	return n, err
}

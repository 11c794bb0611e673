package proxy

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// exchange is one request on a client connection and everything the
// proxy learns while it serves it: the request, its flow (which holds
// the timing), the connection's byte counters when it began, and the
// server connection and context it uses. A connection serves one
// exchange at a time and keeps it in conn.x, reused from one request to
// the next; a CONNECT or Upgrade hands the flow on to its tunnel.
//
// The exchange's bytes are counted in one place, bytes: what it read of
// the client's stream and what it wrote back. A tunnel counts the bytes
// it relays itself (tunnel.count).
type exchange struct {
	c   *conn
	req *http.Request // nil while the head is read, and when it could not be
	f   flow.Flow
	// up0 and down0 are the connection's counts when the exchange began.
	up0, down0 int64

	// Guarded by c.mu, for forceClose: the server connection of a
	// direct-path exchange, and the context of the dials and round trips,
	// made on first use (most exchanges reuse a pooled connection and
	// need none).
	server *upConn
	ctx    context.Context
	cancel context.CancelFunc
}

// begin starts the connection's next exchange at start.
func (c *conn) begin(start time.Time) *exchange {
	x := &c.x
	x.req = nil
	x.up0, x.down0 = c.upCount(), c.cc.wn
	x.f = flow.Flow{
		Key:        c.id + "-" + strconv.Itoa(c.reqs),
		Start:      start,
		Client:     c.clientStr,
		ClientPort: int(c.client.Port()),
		Source:     flow.SourceProxy,
		Kind:       flow.KindHTTP,
		Decision:   flow.DecisionAllowed,
	}
	if c.dst.IsValid() {
		x.f.Source = flow.SourceGateway
	}
	if d, ok := c.p.Devices[c.client.Addr()]; ok {
		x.f.Device = d
	} else if c.user != "" {
		x.f.Device = c.user
	}
	return x
}

// bytes is what the exchange has read of the client's stream (request
// heads and bodies; what waits in the read buffer is not read yet) and
// written to it (answers, 100 Continue, error pages).
func (x *exchange) bytes() (up, down int64) {
	return x.c.upCount() - x.up0, x.c.cc.wn - x.down0
}

// count sets the flow's byte counts to the exchange's so far.
func (x *exchange) count() {
	x.f.BytesUp, x.f.BytesDown = x.bytes()
}

// finish records the flow of an exchange that has ended.
func (x *exchange) finish() {
	x.count()
	x.f.End = time.Now()
	x.c.p.record(&x.f)
}

// recordOpen records the flow of an exchange still running, with its
// counts so far, so that a long download is visible while it lasts.
func (x *exchange) recordOpen() {
	open := x.f
	open.BytesUp, open.BytesDown = x.bytes()
	x.c.p.record(&open)
}

// context is the context of the exchange's dials and round trips. It is
// cancelled when the proxy closes the connection at shutdown, and when
// the exchange ends.
func (x *exchange) context() context.Context {
	c := x.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if x.ctx == nil {
		x.ctx, x.cancel = context.WithCancel(withDst(context.Background(), c.dst))
		if c.closed {
			x.cancel()
		}
	}
	return x.ctx
}

// cancelled reports whether the exchange's context, if it has one, is
// cancelled.
func (x *exchange) cancelled() bool {
	c := x.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed || x.ctx != nil && x.ctx.Err() != nil
}

// setServer sets the server connection the exchange uses, so that a
// forced close at shutdown closes it too (a server that never answers
// must not hold the exchange). It reports false if the client connection
// is closed already.
func (x *exchange) setServer(uc *upConn) bool {
	c := x.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed && uc != nil {
		return false
	}
	x.server = uc
	return !c.closed
}

// end releases what the exchange held for forceClose: its context (a
// Transport round trip's goroutines end with it) and server connection.
func (x *exchange) end() {
	x.req = nil
	if x.ctx == nil && x.server == nil {
		return // the common case: no lock to take
	}
	c := x.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if x.cancel != nil {
		x.cancel()
	}
	x.ctx, x.cancel, x.server = nil, nil, nil
}

// abortLocked cancels the exchange's context and closes its server
// connection, for forceClose; the caller holds c.mu.
func (x *exchange) abortLocked() {
	if x.cancel != nil {
		x.cancel()
	}
	if x.server != nil {
		x.server.nc.Close()
	}
}

package pcap

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// connKey identifies a TCP connection or a UDP association by its two
// endpoints, the lower one first, so both directions find the same entry.
type connKey struct {
	proto uint8
	a, b  netip.AddrPort
}

func makeKey(proto uint8, src, dst netip.AddrPort) connKey {
	if src.Compare(dst) < 0 {
		return connKey{proto, src, dst}
	}
	return connKey{proto, dst, src}
}

// Stream reassembly bounds, per direction: how much out-of-order data is
// held while waiting for a gap to fill.
const (
	maxPendingBytes = 64 << 10
	maxPendingSegs  = 64
)

// segment is an out-of-order piece of a stream, held until the gap before
// it fills.
type segment struct {
	off  int64
	data []byte
}

// half is one direction of a TCP connection.
type half struct {
	started bool
	base    uint32 // sequence number of stream offset 0
	next    int64  // stream offset delivered up to
	hi      int64  // highest stream offset seen: the bytes sent this way
	pend    []segment
	pendN   int
}

// rel turns a sequence number into a stream offset near hi, so that
// sequence numbers may wrap.
func (h *half) rel(seq uint32) int64 {
	return h.hi + int64(int32(seq-(h.base+uint32(h.hi))))
}

// Client stream modes.
const (
	modeSniff  = iota // first bytes not seen yet
	modeTLS           // collecting the ClientHello
	modeHTTP          // HTTP/1.x requests
	modeOpaque        // nothing more to learn: count bytes only
)

// conn is one TCP connection (or, for QUIC, one UDP association).
type conn struct {
	key            connKey
	client, server netip.AddrPort
	firstPkt       int
	start, last    time.Time
	prev, next     *conn // in the reader's open or closed list
	inClosed       bool  // in the closed list

	up, down  half // client to server, server to client
	synSeen   bool
	fin       [2]bool
	rst       bool
	rstBy     int  // direction of the first RST
	heard     bool // any packet from the server
	synAck    bool // the server answered the SYN
	cmode     int
	smodeHTTP bool // parse the server stream as HTTP responses
	creq      httpParser
	sresp     httpParser
	tls       tlsCollector
	hello     *clientHello
	curHello  *clientHello // the hello read last, in or out of a tunnel

	reqs  []*request // requests not yet emitted, oldest first
	nreqs int        // requests seen on this connection

	quic *quicState
	// udp: a UDP association that is neither DNS nor QUIC (NTP and the
	// rest), kept only when the stream notes UDP; ntpVersion is the
	// version of its first NTP request.
	udp        bool
	ntpVersion int
}

func (c *conn) closed() bool { return c.rst || (c.fin[0] && c.fin[1]) }

// request is one HTTP request seen on a connection, with its response.
type request struct {
	n          int // 1 for the first request of the connection
	pkt        int // packet that completed its headers
	start, end time.Time
	method     string
	target     string
	host       string // Host header
	upStart    int64  // client stream offset where it began
	downStart  int64  // server stream offset where its response began; -1 before
	status     int
	hello      *clientHello // the TLS hello inside a CONNECT tunnel
}

// connList is a list of connections, least recently active first. The
// reader keeps two: open connections, which time out after idleTimeout, and
// closed ones, which leave after closedLinger; each is swept from its head.
type connList struct{ head, tail *conn }

func (l *connList) push(c *conn) {
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *connList) remove(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

func (rd *reader) list(c *conn) *connList {
	if c.udp {
		return &rd.udpConns
	}
	if c.inClosed {
		return &rd.closedConns
	}
	return &rd.openConns
}

// touch records activity on c: it moves to the end of its list, which is
// the closed list once it has closed.
func (rd *reader) touch(c *conn, ts time.Time) {
	if ts.After(c.last) {
		c.last = ts
	}
	l := rd.list(c)
	if l.tail == c && c.inClosed == c.closed() {
		return
	}
	l.remove(c)
	c.inClosed = c.closed()
	rd.list(c).push(c)
}

func (rd *reader) newConn(k connKey, client, server netip.AddrPort, ts time.Time) *conn {
	c := &conn{key: k, client: client, server: server, firstPkt: rd.pkt, start: ts, last: ts}
	rd.conns[k] = c
	rd.openConns.push(c)
	return c
}

// tcp handles one TCP segment.
func (rd *reader) tcp(ts time.Time, p *packet) {
	k := makeKey(protoTCP, p.src, p.dst)
	c := rd.conns[k]
	syn := p.flags&tcpSYN != 0
	ack := p.flags&tcpACK != 0
	if c != nil && syn && !ack && p.src == c.client && c.synSeen && c.up.started && p.seq+1 != c.up.base {
		// The same ports again with a new initial sequence number: the
		// old connection is over.
		rd.finish(c)
		c = nil
	}
	if c != nil && c.closed() && syn && !ack {
		rd.finish(c)
		c = nil
	}
	if c == nil {
		client, server := p.src, p.dst
		switch {
		case syn && !ack:
		case syn && ack:
			client, server = p.dst, p.src
		case portRank(p.src.Port()) < portRank(p.dst.Port()):
			// No handshake seen: the side on the better-known port is
			// the server.
			client, server = p.dst, p.src
		}
		c = rd.newConn(k, client, server, ts)
	} else {
		rd.touch(c, ts)
	}
	dir := 0
	h := &c.up
	if p.src != c.client {
		dir = 1
		h = &c.down
	}
	if syn {
		if !ack {
			c.synSeen = true
		}
		if !h.started || h.hi == 0 {
			h.started = true
			h.base = p.seq + 1
			h.next, h.hi = 0, 0
			h.pend, h.pendN = nil, 0
		}
	}
	if dir == 1 {
		c.heard = true
		if syn && ack {
			c.synAck = true
		}
	}
	if p.flags&tcpRST != 0 && !c.rst {
		c.rst = true
		c.rstBy = dir
	}
	if n := len(c.reqs); n > 0 {
		// The packet belongs to the request being sent, or to the
		// response being received.
		r := c.reqs[n-1]
		if dir == 1 {
			for i := n - 1; i >= 0; i-- {
				if c.reqs[i].downStart >= 0 || i == 0 {
					r = c.reqs[i]
					break
				}
			}
		}
		if ts.After(r.end) {
			r.end = ts
		}
	}
	if p.flags&tcpFIN != 0 {
		c.fin[dir] = true
	}
	if c.closed() && !c.inClosed {
		rd.touch(c, ts)
	}
	if p.wireLen == 0 {
		return
	}
	if !h.started {
		h.started = true
		h.base = p.seq
		// The first data seen from the supposed server before any from
		// the client, and it looks like a request: the guess was wrong.
		if dir == 1 && !c.synSeen && !c.up.started && looksLikeClientStart(p.payload) {
			c.client, c.server = c.server, c.client
			c.up, c.down = c.down, c.up
			dir = 0
			h = &c.up
		}
	}
	off := h.rel(p.seq)
	end := off + int64(p.wireLen)
	if end > h.hi {
		h.hi = end
	}
	if !rd.wants(c, dir) {
		return
	}
	rd.deliverSeg(c, dir, h, off, p.payload, p.wireLen, ts)
}

// portRank orders ports by how likely they are a server's: well-known
// first, ephemeral last.
func portRank(port uint16) int {
	switch port {
	case 80, 443, 8080, 8443, 3128, 53, 22, 25, 21, 8000, 1080:
		return 0
	}
	if port < 1024 {
		return 1
	}
	if port < 49152 {
		return 2 + int(port)
	}
	return 70000 + int(port)
}

// wants reports whether the parser of that direction still needs bytes.
func (rd *reader) wants(c *conn, dir int) bool {
	if dir == 0 {
		return c.cmode != modeOpaque
	}
	return c.smodeHTTP
}

// deliverSeg hands the in-order part of a segment to the parsers, holding
// segments that arrive ahead of a gap until the gap fills, within bounds.
func (rd *reader) deliverSeg(c *conn, dir int, h *half, off int64, data []byte, wireLen int, ts time.Time) {
	end := off + int64(wireLen)
	if end <= h.next {
		return // retransmission of delivered data
	}
	if off > h.next {
		if len(data) == wireLen && h.pendN+len(data) <= maxPendingBytes && len(h.pend) < maxPendingSegs {
			cp := append([]byte(nil), data...)
			i := len(h.pend)
			for i > 0 && h.pend[i-1].off > off {
				i--
			}
			h.pend = append(h.pend, segment{})
			copy(h.pend[i+1:], h.pend[i:])
			h.pend[i] = segment{off: off, data: cp}
			h.pendN += len(cp)
			return
		}
		// The gap is not filling (or the capture cut this segment, so
		// it could not be held whole): give up on the gap.
		rd.gap(c, dir)
		h.pend, h.pendN = nil, 0
		h.next = off
		if !rd.wants(c, dir) {
			return
		}
	}
	rd.deliverData(c, dir, h, off, data, wireLen, ts)
	for len(h.pend) > 0 && rd.wants(c, dir) {
		s := h.pend[0]
		if s.off > h.next {
			break
		}
		h.pend = h.pend[1:]
		h.pendN -= len(s.data)
		rd.deliverData(c, dir, h, s.off, s.data, len(s.data), ts)
	}
	if !rd.wants(c, dir) {
		h.pend, h.pendN = nil, 0
	}
}

// deliverData feeds data at stream offset off (≤ h.next) to the parser.
func (rd *reader) deliverData(c *conn, dir int, h *half, off int64, data []byte, wireLen int, ts time.Time) {
	if skip := h.next - off; skip > 0 {
		if skip >= int64(len(data)) {
			if off+int64(wireLen) > h.next {
				h.next = off + int64(wireLen)
			}
			return
		}
		data = data[skip:]
		wireLen -= int(skip)
		off = h.next
	}
	h.next = off + int64(wireLen)
	if len(data) > 0 {
		if dir == 0 {
			rd.clientData(c, data, off, ts)
		} else {
			rd.serverData(c, data, off, ts)
		}
	}
	if len(data) < wireLen && rd.wants(c, dir) {
		rd.gap(c, dir)
	}
}

// gap tells a direction's parser that bytes are missing from the stream.
func (rd *reader) gap(c *conn, dir int) {
	if dir == 0 {
		switch c.cmode {
		case modeSniff, modeTLS:
			c.cmode = modeOpaque
		case modeHTTP:
			c.creq.state = hResync
		}
		return
	}
	c.sresp.state = hResync
}

// clientData parses bytes the client sent.
func (rd *reader) clientData(c *conn, data []byte, off int64, ts time.Time) {
	for len(data) > 0 {
		switch c.cmode {
		case modeSniff:
			switch {
			case data[0] == 0x16:
				c.cmode = modeTLS
				c.tls.reset()
			case startsWithMethod(data) || (len(data) < 8 && data[0] >= 'A' && data[0] <= 'Z'):
				c.cmode = modeHTTP
				c.smodeHTTP = true
				c.creq.state = hIdle
			default:
				c.cmode = modeOpaque
				return
			}
		case modeTLS:
			retry := c.tls.after
			hello, done, err := c.tls.add(data)
			switch {
			case hello != nil && !retry:
				rd.setHello(c, hello)
				// Read on only for a second hello after a
				// HelloRetryRequest, which may be in the rest of data.
				data = nil
				if hello, done, _ = c.tls.add(nil); hello != nil {
					c.curHello.pkts = append(c.curHello.pkts, rd.pkt)
				}
			case hello != nil:
				c.curHello.pkts = append(c.curHello.pkts, rd.pkt)
			}
			if err != nil || done {
				c.cmode = modeOpaque
			}
			return
		case modeHTTP:
			rest := rd.requestData(c, data, off, ts)
			if c.cmode == modeHTTP || len(rest) == 0 {
				return
			}
			// A CONNECT's headers ended: what follows is the tunnel.
			off += int64(len(data) - len(rest))
			data = rest
		default:
			return
		}
	}
}

func (rd *reader) setHello(c *conn, h *clientHello) {
	h.pkts = append(h.pkts, rd.pkt)
	c.curHello = h
	if n := len(c.reqs); n > 0 && c.reqs[n-1].method == "CONNECT" && c.reqs[n-1].hello == nil {
		c.reqs[n-1].hello = h
		return
	}
	if c.hello == nil {
		c.hello = h
		if rd.live && c.nreqs == 0 {
			// A live capture shows the tunnel while it is open, as the
			// proxy does; its end replaces this record (same Key).
			f, pkts := rd.connFlow(c)
			f.End = time.Time{}
			rd.out(f, pkts)
		}
	}
}

// finish ends a connection: it leaves the table and its flows are emitted.
func (rd *reader) finish(c *conn) {
	if rd.conns[c.key] == c {
		delete(rd.conns, c.key)
	}
	rd.list(c).remove(c)
	if c.udp {
		rd.nUDP--
		rd.out(rd.udpFlow(c), nil)
		return
	}
	if c.quic != nil {
		var pkts []int
		if c.quic.hello != nil {
			pkts = c.quic.hello.pkts
		}
		rd.out(rd.quicFlow(c), pkts)
		return
	}
	if c.nreqs == 0 {
		rd.out(rd.connFlow(c))
		return
	}
	for len(c.reqs) > 0 {
		rd.emitRequest(c, true)
	}
}

// connFlow is the one flow of a connection that carried no HTTP request:
// a TLS connection or plain TCP.
func (rd *reader) connFlow(c *conn) (flow.Flow, []int) {
	f := rd.baseFlow(c)
	f.Key = connKeyString(c)
	f.BytesUp, f.BytesDown = c.up.hi, c.down.hi
	f.Kind = flow.KindTCP
	var pkts []int
	if c.hello != nil {
		f.Kind = flow.KindTLS
		f.Scheme = "https"
		applyHello(&f, c.hello)
		pkts = c.hello.pkts
	}
	rd.nameHost(&f, c.server.Addr())
	switch {
	case c.synSeen && !c.heard:
		f.Error = "no answer from the server"
	case c.synSeen && !c.synAck && c.rst && c.rstBy == 1:
		f.Error = "connection refused (RST)"
	}
	return f, pkts
}

func connKeyString(c *conn) string {
	proto := "tcp"
	if c.key.proto == protoUDP {
		proto = "udp"
	}
	return fmt.Sprintf("%s:%s-%s:%d", proto, c.client, c.server, c.firstPkt)
}

// baseFlow is what every flow of connection c shares.
func (rd *reader) baseFlow(c *conn) flow.Flow {
	return flow.Flow{
		Start:      c.start,
		End:        c.last,
		Client:     c.client.Addr().Unmap().String(),
		ClientPort: int(c.client.Port()),
		Port:       int(c.server.Port()),
	}
}

// nameHost fills f.Host when nothing in the connection named the server:
// from a DNS answer seen earlier in the capture, else the address itself.
func (rd *reader) nameHost(f *flow.Flow, server netip.Addr) {
	if f.Host != "" {
		return
	}
	if name, ok := rd.names[server.Unmap()]; ok {
		f.Host = name
		addNote(f, "host named from DNS answer")
		return
	}
	f.Host = server.Unmap().String()
}

func addNote(f *flow.Flow, s string) {
	if f.Note == "" {
		f.Note = s
	} else {
		f.Note += "; " + s
	}
}

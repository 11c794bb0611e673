package pcap

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/target"
)

// Limits that keep memory bounded by the open connections, whatever the
// size of the file.
const (
	// maxCaplen is the largest captured packet accepted (Wireshark's
	// limit is 256 KiB for ordinary link types).
	maxCaplen = 1 << 20
	// idleTimeout ends a connection that has been silent this long in
	// capture time.
	idleTimeout = 5 * time.Minute
	// closedLinger keeps a closed connection a little longer, so that the
	// last ACK and stray retransmissions join it instead of starting a
	// connection of their own.
	closedLinger = 2 * time.Second
	// dnsTimeout ends a DNS query that got no answer.
	dnsTimeout = 10 * time.Second
	// maxNames bounds the address-to-name map learned from DNS answers.
	maxNames = 1 << 16
)

// Sniff reports whether head (the first bytes of a file) starts like a pcap,
// pcapng or gzip-compressed pcap file.
func Sniff(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	switch binary.LittleEndian.Uint32(head) {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, ngSHB:
		return true
	}
	return false
}

// Read reads a pcap or pcapng capture from r and calls emit for each flow
// it finds (see the package comment for what a flow is here). Flows are
// emitted when their connection closes or times out, and the rest at the
// end, so memory follows the open connections, not the file size.
//
// A packet too damaged to decode is reported to skip, with its number and
// offset, and reading goes on. Read returns an error when the input is not a
// capture, when it breaks off (a truncated file: the flows seen up to there
// are emitted first, and the error, which wraps io.ErrUnexpectedEOF, says at
// which offset), when emit returns an error, or when ctx is done.
func Read(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(where string, err error)) error {
	return read(ctx, r, func(f flow.Flow, _ []int) error { return emit(f) }, skip)
}

// emitFunc receives each flow and the numbers of the packets that carried
// its ClientHellos, which tests use to check the order tshark reports.
type emitFunc func(f flow.Flow, hellos []int) error

// source reads packets from pcap or pcapng.
type source interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// gopacket's readers trust the lengths they read. The guard in front of
// the pcapng reader catches what is known to break it; these wrappers turn
// any other panic inside gopacket into an error, so that a damaged file
// cannot crash the program.
func safeRead(src source) (data []byte, ci gopacket.CaptureInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reader failed: %v", p)
		}
	}()
	return src.ZeroCopyReadPacketData()
}

func safeNgReader(r io.Reader) (ngr *pcapgo.NgReader, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reader failed: %v", p)
		}
	}()
	return pcapgo.NewNgReader(r, pcapgo.NgReaderOptions{WantMixedLinkType: true})
}

func read(ctx context.Context, r io.Reader, emit emitFunc, skip func(string, error)) error {
	if skip == nil {
		skip = func(string, error) {}
	}
	// One buffer between the file and gopacket's readers, which use it
	// as it is; the offset of the next unread byte is what went through
	// the counter less what waits in the buffer. (In a gzip file,
	// offsets are in the uncompressed data.)
	cr := &countReader{r: r}
	br := bufio.NewReaderSize(cr, 256<<10)
	head, _ := br.Peek(4)
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("pcap: gzip: %w", err)
		}
		defer zr.Close()
		cr = &countReader{r: zr}
		br = bufio.NewReaderSize(cr, 256<<10)
		head, _ = br.Peek(4)
	}
	if !Sniff(head) {
		return fmt.Errorf("pcap: not a pcap or pcapng file (starts with % x)", head)
	}

	rd := newReader(ctx, emit, skip)
	var (
		src   source
		pos   func() int64 // offset of the next unread byte
		lt    linkType
		guard *ngGuard // the pcapng guard; nil for pcap
	)
	if binary.LittleEndian.Uint32(head) == ngSHB {
		g := newNgGuard(br) // reads br directly: it is a bufio.Reader
		guard = g
		gb := bufio.NewReaderSize(g, 64<<10) // NgReader uses it as is
		pos = func() int64 { return g.off - int64(gb.Buffered()) }
		ngr, err := safeNgReader(gb)
		if err != nil {
			return fmt.Errorf("pcapng: header: %w", err)
		}
		src = ngr
	} else {
		// The header's link type, read here in full: gopacket keeps
		// only its low 8 bits.
		hdr, _ := br.Peek(24)
		if len(hdr) == 24 {
			v := binary.LittleEndian.Uint32(hdr[20:24])
			if m := binary.LittleEndian.Uint32(hdr[0:4]); m == 0xd4c3b2a1 || m == 0x4d3cb2a1 {
				v = binary.BigEndian.Uint32(hdr[20:24])
			}
			lt = linkType(v & 0xffff)
		}
		pos = func() int64 { return cr.n - int64(br.Buffered()) }
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return fmt.Errorf("pcap: header: %w", err)
		}
		// Ignore the header's snap length, as Wireshark does: some
		// writers put packets longer than it in the file.
		pr.SetSnaplen(maxCaplen)
		if !linkSupported(lt) {
			return fmt.Errorf("pcap: link type %d not supported", lt)
		}
		src = pr
	}

	var p packet
	for {
		if rd.pkt%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rd.off = pos()
		data, ci, rerr := safeRead(src)
		if rerr != nil {
			if rerr == io.EOF {
				break
			}
			if ferr := rd.flushAll(); ferr != nil {
				return ferr
			}
			if errors.Is(rerr, io.ErrUnexpectedEOF) {
				if guard != nil {
					// NgReader reads the blocks before a packet (an
					// interface description, statistics) in the same
					// call, so rd.off may be theirs; the file ends in
					// the last block the guard began.
					rd.off = guard.at
				}
				return fmt.Errorf("pcap: packet %d at offset %d (%#x): file ends inside it: %w", rd.pkt+1, rd.off, rd.off, io.ErrUnexpectedEOF)
			}
			var claimed, limit uint64
			if n, _ := fmt.Sscanf(rerr.Error(), "capture length exceeds snap length: %d > %d", &claimed, &limit); n == 2 {
				// gopacket names our limit (maxCaplen) the snap length;
				// the file's own snap length is not what stopped it.
				return fmt.Errorf("pcap: packet %d at offset %d (%#x): its record claims %d bytes, more than the %d pilotwire reads of one packet",
					rd.pkt+1, rd.off, rd.off, claimed, limit)
			}
			return fmt.Errorf("pcap: packet %d at offset %d (%#x): %w", rd.pkt+1, rd.off, rd.off, rerr)
		}
		rd.pkt++
		plt := lt
		if guard != nil {
			plt = guard.linkOf(ci)
		}
		if err := decode(plt, data, &p); err != nil {
			if err != errIgnore {
				skip(fmt.Sprintf("packet %d (offset %#x)", rd.pkt, rd.off), err)
			}
			rd.tick(ci.Timestamp)
			if rd.err != nil {
				return rd.err
			}
			continue
		}
		rd.packet(ci.Timestamp, &p)
		if rd.err != nil {
			return rd.err
		}
	}
	return rd.flushAll()
}

// reader holds the state of one Read.
type reader struct {
	ctx  context.Context
	emit emitFunc
	skip func(string, error)
	err  error // the first error emit returned

	pkt int   // number of the current packet, from 1
	off int64 // offset of the current packet's record
	now time.Time

	conns       map[connKey]*conn
	openConns   connList
	closedConns connList
	dns         map[dnsKey]*dnsQuery // queries waiting for an answer
	dnsDone     map[dnsKey]*dnsQuery // answered lately, to drop repeated answers
	names       map[netip.Addr]string
	lastSweep   time.Time

	// udpIdle, when not zero, makes the UDP traffic that is neither DNS,
	// QUIC nor HTTP into flows too (Stream.NoteUDP): udpConns holds those
	// associations, least recently active first, nUDP counts them, and
	// each ends after udpIdle of silence.
	udpIdle  time.Duration
	udpConns connList
	nUDP     int

	// live: packets come from an interface as they pass (Stream), not
	// from a file: a TLS connection is emitted open when its ClientHello
	// is seen, and again when it ends.
	live bool
}

func newReader(ctx context.Context, emit emitFunc, skip func(string, error)) *reader {
	return &reader{
		ctx:     ctx,
		emit:    emit,
		skip:    skip,
		conns:   make(map[connKey]*conn),
		dns:     make(map[dnsKey]*dnsQuery),
		dnsDone: make(map[dnsKey]*dnsQuery),
		names:   make(map[netip.Addr]string),
	}
}

func (rd *reader) out(f flow.Flow, hellos []int) {
	if rd.err != nil {
		return
	}
	f.Source = flow.SourcePcap
	if !f.End.IsZero() && f.End.Before(f.Start) {
		f.End = f.Start // timestamps that went back in the capture
	}
	// Names come off the wire (SNI, Host headers, DNS): one that is no
	// host name is kept where it was seen (SNI) but names no host.
	f.Host = strings.ToLower(f.Host)
	if why := target.HostProblem(f.Host); why != "" {
		addNote(&f, fmt.Sprintf("host %q %s", target.Clip(f.Host), why))
		f.Host = ""
	}
	if err := rd.emit(f, hellos); err != nil {
		rd.err = err
	}
}

// tick advances the capture clock and, once a second of capture time,
// ends the connections and queries that timed out.
func (rd *reader) tick(ts time.Time) {
	if ts.After(rd.now) {
		rd.now = ts
	}
	if rd.now.Sub(rd.lastSweep) < time.Second {
		return
	}
	rd.lastSweep = rd.now
	for _, l := range []struct {
		list  *connList
		after time.Duration
	}{{&rd.closedConns, closedLinger}, {&rd.openConns, idleTimeout}, {&rd.udpConns, rd.udpIdle}} {
		for c := l.list.head; c != nil && rd.now.Sub(c.last) >= l.after; c = l.list.head {
			rd.finish(c)
		}
	}
	for k, q := range rd.dns {
		if rd.now.Sub(q.start) >= dnsTimeout {
			delete(rd.dns, k)
			rd.out(q.flow(), nil)
		}
	}
	for k, q := range rd.dnsDone {
		if rd.now.Sub(q.end) >= dnsTimeout {
			delete(rd.dnsDone, k)
		}
	}
}

func (rd *reader) packet(ts time.Time, p *packet) {
	rd.tick(ts)
	switch p.proto {
	case protoTCP:
		rd.tcp(ts, p)
	case protoUDP:
		rd.udp(ts, p)
	}
}

// flushAll ends every open connection and query, in the order they began.
func (rd *reader) flushAll() error {
	type pending struct {
		pkt int
		c   *conn
		q   *dnsQuery
	}
	var all []pending
	for _, l := range []*connList{&rd.openConns, &rd.closedConns, &rd.udpConns} {
		for c := l.head; c != nil; c = c.next {
			all = append(all, pending{pkt: c.firstPkt, c: c})
		}
	}
	for _, q := range rd.dns {
		all = append(all, pending{pkt: q.pkt, q: q})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].pkt < all[j].pkt })
	for _, p := range all {
		if p.c != nil {
			rd.finish(p.c)
		} else {
			rd.out(p.q.flow(), nil)
		}
	}
	clear(rd.dns)
	return rd.err
}

// learnName records that addr was given as the answer for name.
func (rd *reader) learnName(addr netip.Addr, name string) {
	if len(rd.names) >= maxNames {
		clear(rd.names)
	}
	rd.names[addr.Unmap()] = name
}

// udp handles DNS, QUIC Initial packets and HTTP over UDP (SSDP), and
// when the stream notes UDP, the rest.
func (rd *reader) udp(ts time.Time, p *packet) {
	sp, dp := p.src.Port(), p.dst.Port()
	if c := rd.conns[makeKey(protoUDP, p.src, p.dst)]; c != nil {
		if c.udp {
			rd.udpPacket(ts, p, c)
		} else {
			rd.quicPacket(ts, p, c)
		}
		return
	}
	switch {
	case isDNSPort(sp) || isDNSPort(dp):
		rd.dnsPacket(ts, p)
	case looksLikeQUICInitial(p.payload):
		rd.quicPacket(ts, p, nil)
	case startsWithMethod(p.payload) && bytes.Contains(p.payload, []byte(" HTTP/1.")):
		rd.udpHTTP(ts, p)
	case rd.udpIdle > 0:
		rd.udpPacket(ts, p, nil)
	}
}

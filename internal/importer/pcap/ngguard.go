package pcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// pcapng block types.
const (
	ngSHB = 0x0A0D0D0A
	ngIDB = 1
	ngPB  = 2 // obsolete Packet Block
	ngSPB = 3
	ngISB = 5
	ngEPB = 6
)

// maxMetaBlock bounds the section, interface and statistics blocks the guard
// holds in memory while it checks them.
const maxMetaBlock = 1 << 20

// ngGuard sits between the file and gopacket's NgReader and checks the
// framing of every block before NgReader sees it. NgReader trusts lengths
// it reads: a damaged capture length makes it allocate up to 4 GiB, an
// option that overruns its block makes it lose the block structure, and
// an if_tsresol exponent of 64 or more divides by zero. The guard refuses
// such a block with an error that says where it is, so NgReader stops
// there with that error instead, and everything before it is imported.
//
// It also lowers an interface's snap length above maxCaplen to maxCaplen,
// since NgReader allocates that much for its packet buffer.
//
// It mirrors how NgReader walks a block (the same lengths, the same option
// loop), so both always agree on where blocks begin.
type ngGuard struct {
	r      *bufio.Reader
	off    int64  // bytes handed out so far = offset in the file
	at     int64  // offset of the block next read last: where a file cut short ends
	cur    []byte // checked bytes of the current block not yet handed out
	stream int64  // packet bytes after cur that are passed through as they come
	buf    []byte
	hdr    [28]byte
	big    bool // byte order of the current section
	nIf    int  // interfaces described in the current section
	snap0  uint32
	links  []linkType // link type of each interface of the current section
	err    error
}

// linkOf returns the link type of a packet NgReader read. NgReader reports
// only the low 8 bits of it; the guard saw the whole value.
func (g *ngGuard) linkOf(ci gopacket.CaptureInfo) linkType {
	var low uint8
	if len(ci.AncillaryData) > 0 {
		if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			low = uint8(lt)
		}
	}
	if i := ci.InterfaceIndex; i >= 0 && i < len(g.links) && uint8(g.links[i]) == low {
		return g.links[i]
	}
	if low == uint8(linkSLL2&0xff) {
		return linkSLL2
	}
	return linkType(low)
}

func newNgGuard(r io.Reader) *ngGuard {
	return &ngGuard{r: bufio.NewReaderSize(r, 64<<10)} // r itself when it is a large enough bufio.Reader
}

func (g *ngGuard) Read(p []byte) (int, error) {
	for len(g.cur) == 0 && g.stream == 0 {
		if g.err != nil {
			return 0, g.err
		}
		g.err = g.next()
	}
	if len(g.cur) > 0 {
		n := copy(p, g.cur)
		g.cur = g.cur[n:]
		g.off += int64(n)
		return n, nil
	}
	if int64(len(p)) > g.stream {
		p = p[:g.stream]
	}
	n, err := g.r.Read(p)
	g.stream -= int64(n)
	g.off += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (g *ngGuard) u16(b []byte) uint16 {
	if g.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (g *ngGuard) u32(b []byte) uint32 {
	if g.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// readFull reads len(b) bytes: io.EOF when nothing at all could be read
// (the file ends between blocks), io.ErrUnexpectedEOF when it ends inside.
func (g *ngGuard) readFull(b []byte) error {
	_, err := io.ReadFull(g.r, b)
	return err
}

// next reads and checks the next block's header (or, for a small
// non-packet block, the whole block) and sets cur and stream.
func (g *ngGuard) next() error {
	at := g.off
	g.at = at
	h := g.hdr[:]
	if err := g.readFull(h[:8]); err != nil {
		return err // io.EOF between blocks is the normal end
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("pcapng block at offset %d: %s", at, fmt.Sprintf(format, args...))
	}
	truncated := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("pcapng block at offset %d: %w", at, io.ErrUnexpectedEOF)
		}
		return err
	}
	typ := binary.LittleEndian.Uint32(h[0:4]) // 0x0A0D0D0A reads the same both ways
	if typ == ngSHB {
		if err := g.readFull(h[8:12]); err != nil {
			return truncated(err)
		}
		switch {
		case binary.LittleEndian.Uint32(h[8:12]) == 0x1A2B3C4D:
			g.big = false
		case binary.BigEndian.Uint32(h[8:12]) == 0x1A2B3C4D:
			g.big = true
		default:
			return bad("section header with an unknown byte-order magic")
		}
	} else {
		typ = g.u32(h[0:4])
	}
	length := int64(g.u32(h[4:8]))
	if length < 12 || length%4 != 0 {
		return bad("block length %d invalid", length)
	}
	switch typ {
	case ngSHB, ngIDB, ngISB:
		if length > maxMetaBlock {
			return bad("block of type %d is %d bytes long, more than the %d allowed", typ, length, maxMetaBlock)
		}
		if cap(g.buf) < int(length) {
			g.buf = make([]byte, length)
		}
		b := g.buf[:length]
		have := 8
		if typ == ngSHB {
			have = 12
		}
		copy(b, h[:have])
		if err := g.readFull(b[have:]); err != nil {
			return truncated(err)
		}
		if err := g.checkMeta(typ, b); err != nil {
			return bad("%v", err)
		}
		g.cur = b
		return nil
	case ngEPB, ngPB:
		if length < 32 {
			return bad("packet block length %d too short", length)
		}
		if length > maxCaplen+maxMetaBlock {
			return bad("packet block length %d too long", length)
		}
		if err := g.readFull(h[8:28]); err != nil {
			return truncated(err)
		}
		ifid := int(g.u32(h[8:12]))
		if typ == ngPB {
			ifid = int(g.u16(h[8:10]))
		}
		if ifid >= g.nIf {
			return bad("packet of interface %d, but the section describes %d", ifid, g.nIf)
		}
		capLen := int64(g.u32(h[20:24]))
		if capLen > length-32 || capLen > maxCaplen {
			return bad("captured length %d does not fit the block (%d bytes)", capLen, length)
		}
		g.cur = h[:28]
		g.stream = length - 28
		return nil
	case ngSPB:
		if length < 16 {
			return bad("simple packet block length %d too short", length)
		}
		if err := g.readFull(h[8:12]); err != nil {
			return truncated(err)
		}
		if g.nIf == 0 {
			return bad("simple packet block before any interface description")
		}
		capLen := int64(g.u32(h[8:12]))
		if g.snap0 != 0 && capLen > int64(g.snap0) {
			capLen = int64(g.snap0)
		}
		if capLen > length-16 || capLen > maxCaplen {
			return bad("packet length %d does not fit the block (%d bytes)", capLen, length)
		}
		g.cur = h[:12]
		g.stream = length - 12
		return nil
	default:
		// NgReader skips other blocks by their length.
		g.cur = h[:8]
		g.stream = length - 8
		return nil
	}
}

// checkMeta checks a whole section, interface or statistics block the way
// NgReader will read it, and records what the guard needs from it.
func (g *ngGuard) checkMeta(typ uint32, b []byte) error {
	var fixed int // bytes before the options, block header included
	switch typ {
	case ngSHB:
		fixed = 24
	case ngIDB:
		fixed = 16
	case ngISB:
		fixed = 20
	}
	if len(b) < fixed+4 {
		return fmt.Errorf("block of type %d is %d bytes long, need %d", typ, len(b), fixed+4)
	}
	switch typ {
	case ngSHB:
		g.nIf, g.snap0 = 0, 0
		g.links = g.links[:0]
	case ngISB:
		if int(g.u32(b[8:12])) >= g.nIf {
			return fmt.Errorf("statistics of interface %d, but the section describes %d", g.u32(b[8:12]), g.nIf)
		}
	}
	// The options, walked exactly as NgReader.readOption does: it stops
	// when 4 bytes (the trailing length) are left or at opt_endofopt.
	rem := len(b) - fixed
	pos := fixed
	for rem != 4 {
		if rem < 8 {
			return errors.New("options run past the end of the block")
		}
		code := g.u16(b[pos:])
		olen := int(g.u16(b[pos+2:]))
		pos += 4
		rem -= 4
		if code == 0 {
			break
		}
		padded := (olen + 3) &^ 3
		if rem < padded+4 {
			return fmt.Errorf("option %d of %d bytes runs past the end of the block", code, olen)
		}
		if typ == ngIDB {
			switch code {
			case 9: // if_tsresol
				if olen != 1 {
					return fmt.Errorf("if_tsresol option of %d bytes", olen)
				}
				v := b[pos]
				if (v&0x80 != 0 && v&0x7f > 63) || (v&0x80 == 0 && v > 19) {
					return fmt.Errorf("if_tsresol %#x out of range", v)
				}
			case 14: // if_tsoffset
				if olen != 8 {
					return fmt.Errorf("if_tsoffset option of %d bytes", olen)
				}
			}
		}
		pos += padded
		rem -= padded
	}
	if typ == ngIDB {
		// NgReader sizes its packet buffer by the interface's snap
		// length: a damaged one would have it allocate up to 4 GiB. No
		// packet longer than maxCaplen gets through the guard, so that
		// is the most any interface needs.
		if g.u32(b[12:16]) > maxCaplen {
			if g.big {
				binary.BigEndian.PutUint32(b[12:16], maxCaplen)
			} else {
				binary.LittleEndian.PutUint32(b[12:16], maxCaplen)
			}
		}
		g.nIf++
		g.links = append(g.links, linkType(g.u16(b[8:10])))
		if g.nIf == 1 {
			g.snap0 = g.u32(b[12:16])
		}
	}
	return nil
}

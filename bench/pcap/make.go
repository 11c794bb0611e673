package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// makeBig writes an Ethernet pcap of at least size bytes to out by
// repeating the Ethernet captures among inputs one after the other. Each
// copy of a file is moved in time to follow the previous one (1 s apart),
// and every port of 1024 or above is shifted by the repetition number, with
// the TCP and UDP checksums fixed, so that each copy's connections are new
// connections to a reader that tracks them.
func makeBig(out string, size int64, inputs []string) error {
	type pkt struct {
		ts   time.Duration // from the start of its file
		data []byte
	}
	type capture struct {
		name string
		span time.Duration
		pkts []pkt
	}
	var caps []capture
	for _, name := range inputs {
		c := capture{name: name}
		err := readEthernet(name, func(ts time.Time, data []byte, first time.Time) {
			d := ts.Sub(first)
			if d < 0 {
				d = 0
			}
			if d > c.span {
				c.span = d
			}
			c.pkts = append(c.pkts, pkt{d, append([]byte(nil), data...)})
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "make: leaving out %s: %v\n", name, err)
			continue
		}
		caps = append(caps, c)
	}
	if len(caps) == 0 {
		return fmt.Errorf("no Ethernet capture among the inputs")
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		return err
	}
	written := int64(24)
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	buf := make([]byte, 0, 1<<16)
	for rep := 0; written < size; rep++ {
		for _, c := range caps {
			for _, p := range c.pkts {
				buf = append(buf[:0], p.data...)
				shiftPorts(buf, uint16(rep*997%64512))
				ci := gopacket.CaptureInfo{Timestamp: clock.Add(p.ts), CaptureLength: len(buf), Length: len(buf)}
				if err := w.WritePacket(ci, buf); err != nil {
					return err
				}
				written += 16 + int64(len(buf))
			}
			clock = clock.Add(c.span + time.Second)
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, %d input captures repeated\n", out, written, len(caps))
	return nil
}

// readEthernet calls fn for each packet of an Ethernet pcap or pcapng
// file.
func readEthernet(name string, fn func(ts time.Time, data []byte, first time.Time)) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		return err
	}
	var src interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	if binary.LittleEndian.Uint32(magic) == 0x0a0d0d0a {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return err
		}
		if r.LinkType() != layers.LinkTypeEthernet {
			return fmt.Errorf("link type %v", r.LinkType())
		}
		src = r
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return err
		}
		if r.LinkType() != layers.LinkTypeEthernet {
			return fmt.Errorf("link type %v", r.LinkType())
		}
		src = r
	}
	var first time.Time
	for {
		data, ci, err := src.ReadPacketData()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if first.IsZero() {
			first = ci.Timestamp
		}
		fn(ci.Timestamp, data, first)
	}
}

// shiftPorts adds delta to each TCP/UDP port of 1024 or above in an
// Ethernet frame (wrapping within 1024-65535) and fixes the checksum.
func shiftPorts(b []byte, delta uint16) {
	if delta == 0 || len(b) < 14 {
		return
	}
	et := binary.BigEndian.Uint16(b[12:])
	off := 14
	for et == 0x8100 && len(b) >= off+4 {
		et = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	var proto byte
	switch {
	case et == 0x0800 && len(b) >= off+20:
		if binary.BigEndian.Uint16(b[off+6:])&0x1fff != 0 {
			return
		}
		proto = b[off+9]
		off += int(b[off]&0x0f) * 4
	case et == 0x86dd && len(b) >= off+40:
		proto = b[off+6]
		off += 40
	default:
		return
	}
	if proto != 6 && proto != 17 || len(b) < off+8 {
		return
	}
	csum := off + 16 // TCP
	if proto == 17 {
		csum = off + 6
	}
	for _, p := range []int{off, off + 2} {
		old := binary.BigEndian.Uint16(b[p:])
		if old < 1024 {
			continue
		}
		nw := uint16(1024 + (uint32(old)-1024+uint32(delta))%(65536-1024))
		binary.BigEndian.PutUint16(b[p:], nw)
		if len(b) >= csum+2 {
			c := binary.BigEndian.Uint16(b[csum:])
			if proto == 17 && c == 0 {
				continue // no checksum
			}
			// RFC 1624: HC' = ~(~HC + ~m + m')
			sum := uint32(^c) + uint32(^old) + uint32(nw)
			sum = (sum & 0xffff) + (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16)
			binary.BigEndian.PutUint16(b[csum:], ^uint16(sum))
		}
	}
}

package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// The link types Read understands. Values are the LINKTYPE_ numbers of the
// tcpdump registry (what pcap and pcapng headers carry).
const (
	linkNull     = 0   // BSD loopback: 4-byte address family in host order
	linkEthernet = 1   // Ethernet II, with 802.1Q/802.1ad tags
	linkRaw      = 101 // raw IPv4 or IPv6
	linkRawOld   = 12  // DLT_RAW as some BSDs wrote it
	linkRawOld2  = 14  // DLT_RAW as OpenBSD wrote it
	linkLoop     = 108 // OpenBSD loopback: address family in network order
	linkSLL      = 113 // Linux cooked capture v1
	linkIPv4     = 228
	linkIPv6     = 229
	linkSLL2     = 276 // Linux cooked capture v2
)

// linkType is a LINKTYPE_ value. (gopacket's layers.LinkType is 8 bits
// wide in v1.1.19, too narrow for Linux cooked v2.)
type linkType uint16

func linkSupported(lt linkType) bool {
	switch lt {
	case linkNull, linkEthernet, linkRaw, linkRawOld, linkRawOld2, linkLoop, linkSLL, linkIPv4, linkIPv6, linkSLL2:
		return true
	}
	return false
}

const (
	protoTCP = 6
	protoUDP = 17
)

// packet is the part of one captured packet that the flow logic needs. The
// payload aliases the reader's buffer and is only valid until the next
// packet is read.
type packet struct {
	proto    uint8
	src, dst netip.AddrPort
	// TCP only.
	seq, ack uint32
	flags    uint8
	// payload is the captured transport payload; wireLen is its length on
	// the wire, which is larger when the capture was cut by the snap length.
	payload []byte
	wireLen int
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// errIgnore marks a packet that is well formed but of no interest (ARP, an
// IP fragment after the first, ICMP, …). It is not reported as skipped.
var errIgnore = errors.New("ignored")

// decode parses the link, network and transport headers of data. It returns
// errIgnore for packets that carry no TCP or UDP, and a descriptive error for
// packets too damaged to parse.
func decode(lt linkType, data []byte, p *packet) error {
	var etype uint16
	switch lt {
	case linkEthernet:
		if len(data) < 14 {
			return fmt.Errorf("ethernet header: %d bytes captured, need 14", len(data))
		}
		etype = binary.BigEndian.Uint16(data[12:14])
		data = data[14:]
		// 802.1Q and 802.1ad tags, possibly stacked.
		for i := 0; i < 4 && (etype == 0x8100 || etype == 0x88a8 || etype == 0x9100); i++ {
			if len(data) < 4 {
				return errors.New("truncated VLAN tag")
			}
			etype = binary.BigEndian.Uint16(data[2:4])
			data = data[4:]
		}
	case linkSLL:
		if len(data) < 16 {
			return fmt.Errorf("linux cooked header: %d bytes captured, need 16", len(data))
		}
		etype = binary.BigEndian.Uint16(data[14:16])
		data = data[16:]
	case linkSLL2:
		if len(data) < 20 {
			return fmt.Errorf("linux cooked v2 header: %d bytes captured, need 20", len(data))
		}
		etype = binary.BigEndian.Uint16(data[0:2])
		data = data[20:]
	case linkNull, linkLoop:
		if len(data) < 4 {
			return fmt.Errorf("loopback header: %d bytes captured, need 4", len(data))
		}
		// The family is in the capturing host's byte order for NULL and
		// in network order for LOOP; accept either. AF_INET is 2
		// everywhere; AF_INET6 is 10 (Linux), 24, 28 or 30 (BSDs, macOS),
		// 23 (Windows).
		fam := binary.LittleEndian.Uint32(data[:4])
		if fam > 0xffff {
			fam = binary.BigEndian.Uint32(data[:4])
		}
		data = data[4:]
		switch fam {
		case 2:
			etype = 0x0800
		case 10, 23, 24, 28, 30:
			etype = 0x86dd
		default:
			return errIgnore
		}
	case linkRaw, linkRawOld, linkRawOld2, linkIPv4, linkIPv6:
		if len(data) < 1 {
			return errors.New("empty packet")
		}
		switch data[0] >> 4 {
		case 4:
			etype = 0x0800
		case 6:
			etype = 0x86dd
		default:
			return fmt.Errorf("raw IP packet of version %d", data[0]>>4)
		}
	default:
		return fmt.Errorf("link type %d not supported", lt)
	}
	switch etype {
	case 0x0800:
		return decodeIPv4(data, p)
	case 0x86dd:
		return decodeIPv6(data, p)
	}
	return errIgnore
}

func decodeIPv4(data []byte, p *packet) error {
	if len(data) < 20 {
		return fmt.Errorf("IPv4 header: %d bytes captured, need 20", len(data))
	}
	if data[0]>>4 != 4 {
		return fmt.Errorf("IPv4 header with version %d", data[0]>>4)
	}
	ihl := int(data[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(data[2:4]))
	if ihl < 20 || len(data) < ihl {
		return fmt.Errorf("IPv4 header length %d invalid (%d bytes captured)", ihl, len(data))
	}
	if total == 0 {
		// TCP segmentation offload on the capturing host leaves 0 here.
		total = len(data)
	}
	if total < ihl {
		return fmt.Errorf("IPv4 total length %d shorter than its header (%d)", total, ihl)
	}
	frag := binary.BigEndian.Uint16(data[6:8])
	if frag&0x1fff != 0 {
		return errIgnore // a later fragment: no transport header
	}
	p.proto = data[9]
	src := netip.AddrFrom4([4]byte(data[12:16]))
	dst := netip.AddrFrom4([4]byte(data[16:20]))
	wire := total - ihl
	data = data[ihl:]
	if len(data) > wire {
		data = data[:wire] // Ethernet padding
	}
	return decodeTransport(data, wire, src, dst, p)
}

func decodeIPv6(data []byte, p *packet) error {
	if len(data) < 40 {
		return fmt.Errorf("IPv6 header: %d bytes captured, need 40", len(data))
	}
	if data[0]>>4 != 6 {
		return fmt.Errorf("IPv6 header with version %d", data[0]>>4)
	}
	wire := int(binary.BigEndian.Uint16(data[4:6]))
	next := data[6]
	src := netip.AddrFrom16([16]byte(data[8:24]))
	dst := netip.AddrFrom16([16]byte(data[24:40]))
	data = data[40:]
	if wire == 0 {
		wire = len(data) // jumbogram or offload
	}
	if len(data) > wire {
		data = data[:wire]
	}
	// Walk the extension headers.
	for i := 0; i < 8; i++ {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(data) < 8 {
				return errors.New("truncated IPv6 extension header")
			}
			n := (int(data[1]) + 1) * 8
			if len(data) < n || wire < n {
				return errors.New("truncated IPv6 extension header")
			}
			next = data[0]
			data = data[n:]
			wire -= n
		case 44: // fragment
			if len(data) < 8 || wire < 8 {
				return errors.New("truncated IPv6 fragment header")
			}
			if binary.BigEndian.Uint16(data[2:4])&0xfff8 != 0 {
				return errIgnore
			}
			next = data[0]
			data = data[8:]
			wire -= 8
		default:
			p.proto = next
			return decodeTransport(data, wire, src, dst, p)
		}
	}
	return errIgnore
}

func decodeTransport(data []byte, wire int, src, dst netip.Addr, p *packet) error {
	switch p.proto {
	case protoTCP:
		if len(data) < 20 {
			return fmt.Errorf("TCP header: %d bytes captured, need 20", len(data))
		}
		off := int(data[12]>>4) * 4
		if off < 20 || len(data) < off {
			return fmt.Errorf("TCP header length %d invalid (%d bytes captured)", off, len(data))
		}
		if wire < off {
			return fmt.Errorf("TCP header length %d beyond the IP payload (%d bytes)", off, wire)
		}
		p.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(data[0:2]))
		p.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(data[2:4]))
		p.seq = binary.BigEndian.Uint32(data[4:8])
		p.ack = binary.BigEndian.Uint32(data[8:12])
		p.flags = data[13]
		p.payload = data[off:]
		p.wireLen = wire - off
		return nil
	case protoUDP:
		if len(data) < 8 {
			return fmt.Errorf("UDP header: %d bytes captured, need 8", len(data))
		}
		if wire < 8 {
			return fmt.Errorf("UDP header beyond the IP payload (%d bytes)", wire)
		}
		p.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(data[0:2]))
		p.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(data[2:4]))
		ulen := int(binary.BigEndian.Uint16(data[4:6]))
		if ulen >= 8 && ulen <= wire {
			wire = ulen
		}
		p.payload = data[8:]
		if len(p.payload) > wire-8 {
			p.payload = p.payload[:wire-8]
		}
		p.wireLen = wire - 8
		p.flags = 0
		return nil
	}
	return errIgnore
}

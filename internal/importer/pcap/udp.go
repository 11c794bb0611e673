package pcap

import (
	"strconv"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// maxUDPAssocs bounds the UDP associations a live stream that notes UDP
// (Stream.NoteUDP) keeps at once; past it, the least recently active one
// ends early. A device scanning ports cannot make memory grow.
const maxUDPAssocs = 1 << 14

// ntpPort is NTP's (and SNTP's) UDP port.
const ntpPort = 123

// udpPacket counts a UDP datagram that is neither DNS, QUIC nor HTTP
// into its association (client address and port to server address and
// port), which becomes one flow. c is the association when it exists
// already. The side that sent first is the client: a live stream sees
// associations begin.
func (rd *reader) udpPacket(ts time.Time, p *packet, c *conn) {
	if c == nil {
		if rd.nUDP >= maxUDPAssocs {
			rd.finish(rd.udpConns.head)
		}
		k := makeKey(protoUDP, p.src, p.dst)
		c = &conn{key: k, client: p.src, server: p.dst, firstPkt: rd.pkt, start: ts, last: ts, udp: true}
		rd.conns[k] = c
		rd.udpConns.push(c)
		rd.nUDP++
		if p.dst.Port() == ntpPort && len(p.payload) > 0 {
			c.ntpVersion = int(p.payload[0]>>3) & 7
		}
	} else {
		rd.touch(c, ts)
	}
	if p.src == c.client {
		c.up.hi += int64(p.wireLen)
	} else {
		c.down.hi += int64(p.wireLen)
		c.heard = true
	}
}

// udpFlow is the flow of a UDP association: kind udp, NTP said in its
// Note, named by a DNS answer seen earlier or by the server's address.
func (rd *reader) udpFlow(c *conn) flow.Flow {
	f := rd.baseFlow(c)
	f.Key = connKeyString(c)
	f.Kind = flow.KindUDP
	f.BytesUp, f.BytesDown = c.up.hi, c.down.hi
	if c.server.Port() == ntpPort {
		f.Note = "NTP"
		if c.ntpVersion > 0 {
			f.Note += " version " + strconv.Itoa(c.ntpVersion)
		}
		if !c.heard {
			f.Error = "no answer from the server"
		}
	}
	rd.nameHost(&f, c.server.Addr())
	return f
}

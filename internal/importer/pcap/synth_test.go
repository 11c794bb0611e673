package pcap

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// A synthetic capture: packets built with gopacket's layers, framed for
// the link type under test, written as pcap by hand (pcapgo's writer takes
// an 8-bit link type, too narrow for Linux cooked v2).

type rec struct {
	ts   time.Time
	data []byte
}

type synth struct {
	t    testing.TB
	link uint32
	now  time.Time
	pkts []rec
	vlan bool // tag Ethernet frames with 802.1Q
	hbh  bool // put an IPv6 hop-by-hop options header before TCP/UDP
}

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)

func newSynth(t testing.TB, link uint32) *synth {
	return &synth{t: t, link: link, now: t0}
}

// frame wraps an IP packet in the link-layer header.
func (s *synth) frame(ip []byte, v6 bool) []byte {
	etype := uint16(0x0800)
	if v6 {
		etype = 0x86dd
	}
	var h []byte
	switch s.link {
	case linkEthernet:
		h = make([]byte, 14)
		copy(h, []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2})
		binary.BigEndian.PutUint16(h[12:], etype)
		if s.vlan {
			h = append(h[:12], 0x81, 0x00, 0x00, 0x07, byte(etype>>8), byte(etype))
		}
	case linkSLL:
		h = make([]byte, 16)
		binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
		binary.BigEndian.PutUint16(h[4:], 6)
		binary.BigEndian.PutUint16(h[14:], etype)
	case linkSLL2:
		h = make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], etype)
		binary.BigEndian.PutUint32(h[4:], 3) // interface index
		binary.BigEndian.PutUint16(h[8:], 1)
		h[11] = 6
	case linkNull:
		h = make([]byte, 4)
		fam := uint32(2)
		if v6 {
			fam = 30 // macOS AF_INET6
		}
		binary.LittleEndian.PutUint32(h, fam)
	case linkRaw:
	}
	return append(h, ip...)
}

func (s *synth) add(ts time.Time, ls ...gopacket.SerializableLayer) {
	s.t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		s.t.Fatal(err)
	}
	ip6, v6 := ls[0].(*layers.IPv6)
	data := append([]byte(nil), buf.Bytes()...)
	if v6 && s.hbh {
		// Insert 8 bytes of hop-by-hop options (a PadN) after the
		// fixed header.
		next := ip6.NextHeader
		data[6] = 0 // hop-by-hop
		binary.BigEndian.PutUint16(data[4:], binary.BigEndian.Uint16(data[4:])+8)
		ext := []byte{byte(next), 0, 1, 4, 0, 0, 0, 0}
		data = append(data[:40], append(ext, data[40:]...)...)
	}
	s.pkts = append(s.pkts, rec{ts, s.frame(data, v6)})
}

// ip returns the network layer for a packet from src to dst.
func ipLayer(src, dst netip.Addr, proto layers.IPProtocol) (gopacket.SerializableLayer, gopacket.NetworkLayer) {
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		return ip, ip
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return ip, ip
}

// tcpConn writes the packets of one TCP connection.
type tcpConn struct {
	s              *synth
	client, server netip.AddrPort
	cseq, sseq     uint32
}

func (s *synth) dial(client, server string) *tcpConn {
	return &tcpConn{s: s, client: netip.MustParseAddrPort(client), server: netip.MustParseAddrPort(server), cseq: 1000, sseq: 900000}
}

// seg sends one segment; fromClient picks the direction. seq, when not
// nil, overrides the sequence number (to send segments out of order).
func (c *tcpConn) seg(fromClient bool, flags string, payload []byte, seq *uint32) {
	c.s.now = c.s.now.Add(10 * time.Millisecond)
	src, dst := c.client, c.server
	my, their := &c.cseq, &c.sseq
	if !fromClient {
		src, dst = dst, src
		my, their = their, my
	}
	nl, nlayer := ipLayer(src.Addr(), dst.Addr(), layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: *my, Ack: *their, Window: 65535,
		SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A"), FIN: strings.Contains(flags, "F"),
		RST: strings.Contains(flags, "R"), PSH: len(payload) > 0}
	if seq != nil {
		tcp.Seq = *seq
	}
	if err := tcp.SetNetworkLayerForChecksum(nlayer); err != nil {
		c.s.t.Fatal(err)
	}
	c.s.add(c.s.now, nl, tcp, gopacket.Payload(payload))
	if seq == nil {
		*my += uint32(len(payload))
		if tcp.SYN || tcp.FIN {
			*my++
		}
	}
}

func (c *tcpConn) handshake() {
	c.seg(true, "S", nil, nil)
	c.seg(false, "SA", nil, nil)
	c.seg(true, "A", nil, nil)
}

func (c *tcpConn) send(fromClient bool, payload []byte) { c.seg(fromClient, "A", payload, nil) }

func (c *tcpConn) close() {
	c.seg(true, "FA", nil, nil)
	c.seg(false, "FA", nil, nil)
	c.seg(true, "A", nil, nil)
}

func (s *synth) udp(src, dst string, payload []byte) {
	s.now = s.now.Add(10 * time.Millisecond)
	a, b := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	nl, nlayer := ipLayer(a.Addr(), b.Addr(), layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(a.Port()), DstPort: layers.UDPPort(b.Port())}
	if err := u.SetNetworkLayerForChecksum(nlayer); err != nil {
		s.t.Fatal(err)
	}
	s.add(s.now, nl, u, gopacket.Payload(payload))
}

// pcap writes the capture as a pcap file.
func (s *synth) pcap(bigEndian, nano bool) []byte {
	var bo binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		bo = binary.BigEndian
	}
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	var b bytes.Buffer
	h := make([]byte, 24)
	bo.PutUint32(h[0:], magic)
	bo.PutUint16(h[4:], 2)
	bo.PutUint16(h[6:], 4)
	bo.PutUint32(h[16:], 65535)
	bo.PutUint32(h[20:], s.link)
	b.Write(h)
	for _, p := range s.pkts {
		r := make([]byte, 16)
		frac := uint32(p.ts.Nanosecond() / 1000)
		if nano {
			frac = uint32(p.ts.Nanosecond())
		}
		bo.PutUint32(r[0:], uint32(p.ts.Unix()))
		bo.PutUint32(r[4:], frac)
		bo.PutUint32(r[8:], uint32(len(p.data)))
		bo.PutUint32(r[12:], uint32(len(p.data)))
		b.Write(r)
		b.Write(p.data)
	}
	return b.Bytes()
}

// pcapng writes the capture as pcapng with gopacket's writer (Ethernet).
func (s *synth) pcapng() []byte {
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkType(s.link))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, p := range s.pkts {
		ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(p.data), Length: len(p.data)}
		if err := w.WritePacket(ci, p.data); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		s.t.Fatal(err)
	}
	return b.Bytes()
}

// clientHelloBytes returns the first flight of a real crypto/tls client:
// its ClientHello record.
func clientHelloBytes(t testing.TB, sni string, alpn ...string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, NextProtos: alpn})
		c.Handshake() //nolint:errcheck // the pipe closes under it
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

func onlyFlow(t *testing.T, res result) flow.Flow {
	t.Helper()
	if res.err != nil {
		t.Fatalf("Read: %v", res.err)
	}
	if len(res.skips) > 0 {
		t.Errorf("skips: %q", res.skips)
	}
	if len(res.flows) != 1 {
		for _, g := range res.flows {
			t.Logf("flow %+v", g.f)
		}
		t.Fatalf("%d flows, want 1", len(res.flows))
	}
	return res.flows[0].f
}

// TestLinkTypes sends the same TLS connection, with its ClientHello split
// into three segments sent out of order, over every link type and both IP
// versions, in pcap of both byte orders and timestamp precisions.
func TestLinkTypes(t *testing.T) {
	hello := clientHelloBytes(t, "example.test", "h2", "http/1.1")
	links := []struct {
		name      string
		link      uint32
		vlan, hbh bool
	}{
		{"ethernet", linkEthernet, false, false}, {"sll", linkSLL, false, false}, {"sll2", linkSLL2, false, false},
		{"raw", linkRaw, false, false}, {"null", linkNull, false, false},
		{"vlan-hop-by-hop", linkEthernet, true, true},
	}
	addrs := []struct{ client, server string }{
		{"10.1.2.3:50000", "192.0.2.7:443"},
		{"[2001:db8::1]:50000", "[2001:db8::7]:443"},
	}
	for _, l := range links {
		for _, a := range addrs {
			for _, format := range []string{"le-micro", "be-nano"} {
				t.Run(l.name+"/"+a.client+"/"+format, func(t *testing.T) {
					s := newSynth(t, l.link)
					s.vlan, s.hbh = l.vlan, l.hbh
					c := s.dial(a.client, a.server)
					c.handshake()
					// Three pieces, the middle one first.
					p1, p2, p3 := hello[:100], hello[100:300], hello[300:]
					seq2 := c.cseq + 100
					c.seg(true, "A", p2, &seq2)
					c.seg(true, "A", p1, nil)
					c.cseq += uint32(len(p2))
					c.send(true, p3)
					c.send(false, make([]byte, 1400))
					c.send(false, make([]byte, 600))
					c.send(true, make([]byte, 64))
					c.close()
					res := readBytes(t, s.pcap(format == "be-nano", format == "be-nano"))
					f := onlyFlow(t, res)
					client := netip.MustParseAddrPort(a.client)
					want := flow.Flow{
						Key:        "tcp:" + a.client + "-" + a.server + ":1",
						Start:      t0.Add(10 * time.Millisecond),
						End:        s.now,
						Client:     client.Addr().String(),
						ClientPort: 50000,
						Source:     flow.SourcePcap,
						Kind:       flow.KindTLS,
						Scheme:     "https",
						Host:       "example.test",
						Port:       443,
						BytesUp:    int64(len(hello) + 64),
						BytesDown:  2000,
						SNI:        "example.test",
						ALPN:       "h2,http/1.1",
						TLSVersion: "1.3",
					}
					if !reflect.DeepEqual(f, want) {
						t.Errorf("got  %+v\nwant %+v", f, want)
					}
					if hp := res.flows[0].hellos; len(hp) != 1 || hp[0] != 6 {
						t.Errorf("hello completed by packets %v, want [6]", hp)
					}
				})
			}
		}
	}
}

// TestPcapngAndGzip reads the same connection as pcapng and gzip.
func TestPcapngAndGzip(t *testing.T) {
	s := newSynth(t, linkEthernet)
	c := s.dial("10.0.0.2:40000", "10.0.0.9:80")
	c.handshake()
	c.send(true, []byte("GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n"))
	c.send(false, []byte("HTTP/1.1 204 No Content\r\n\r\n"))
	c.close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(s.pcap(false, false))
	zw.Close()
	for name, data := range map[string][]byte{"pcapng": s.pcapng(), "gzip": gz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			f := onlyFlow(t, readBytes(t, data))
			if f.Kind != flow.KindHTTP || f.URL != "http://example.test/a" || f.Status != 204 || f.Host != "example.test" || f.Port != 80 {
				t.Errorf("flow %+v", f)
			}
		})
	}
}

// TestHTTPConversations checks keep-alive, HEAD, bodies, a refused and an
// accepted CONNECT on one connection, and a tunnel's ClientHello.
func TestHTTPConversations(t *testing.T) {
	hello := clientHelloBytes(t, "inner.example", "http/1.1")
	s := newSynth(t, linkEthernet)

	c := s.dial("10.0.0.2:40001", "10.0.0.9:80")
	c.handshake()
	req1 := "POST /upload HTTP/1.1\r\nHost: api.example:80\r\nContent-Length: 10\r\n\r\n0123456789"
	resp1 := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	req2 := "HEAD /x HTTP/1.1\r\nHost: api.example\r\n\r\n"
	resp2 := "HTTP/1.1 404 Not Found\r\nContent-Length: 1234\r\n\r\n"
	req3 := "GET /big HTTP/1.1\r\nHost: api.example\r\n\r\n"
	resp3 := "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n"
	c.send(true, []byte(req1))
	c.send(false, []byte(resp1))
	c.send(true, []byte(req2))
	c.send(false, []byte(resp2))
	c.send(true, []byte(req3))
	c.send(false, append([]byte(resp3), make([]byte, 1400)...))
	c.send(false, make([]byte, 1400))
	c.send(false, make([]byte, 200))
	c.close()

	p := s.dial("10.0.0.2:40002", "10.0.0.1:3128")
	p.handshake()
	con1 := "CONNECT secure.example:8443 HTTP/1.1\r\nHost: secure.example:8443\r\n\r\n"
	deny := "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
	con2 := "CONNECT secure.example:8443 HTTP/1.1\r\nHost: secure.example:8443\r\nProxy-Authorization: Basic eDp5\r\n\r\n"
	ok := "HTTP/1.1 200 Connection established\r\n\r\n"
	p.send(true, []byte(con1))
	p.send(false, []byte(deny))
	p.send(true, []byte(con2))
	p.send(false, []byte(ok))
	p.send(true, hello)
	p.send(false, make([]byte, 2000))
	p.close()

	res := readBytes(t, s.pcap(false, false))
	if res.err != nil || len(res.skips) > 0 {
		t.Fatalf("err %v, skips %q", res.err, res.skips)
	}
	type brief struct {
		Key, Kind, Method, Host string
		Port                    int
		URL                     string
		Status                  int
		Up, Down                int64
		SNI                     string
	}
	var gotB []brief
	for _, g := range res.flows {
		f := g.f
		gotB = append(gotB, brief{f.Key, string(f.Kind), f.Method, f.Host, f.Port, f.URL, f.Status, f.BytesUp, f.BytesDown, f.SNI})
	}
	l := func(s string) int64 { return int64(len(s)) }
	want := []brief{
		{"tcp:10.0.0.2:40001-10.0.0.9:80:1", "http", "POST", "api.example", 80, "http://api.example:80/upload", 200, l(req1), l(resp1), ""},
		{"tcp:10.0.0.2:40001-10.0.0.9:80:1#2", "http", "HEAD", "api.example", 80, "http://api.example/x", 404, l(req2), l(resp2), ""},
		{"tcp:10.0.0.2:40001-10.0.0.9:80:1#3", "http", "GET", "api.example", 80, "http://api.example/big", 200, l(req3), l(resp3) + 3000, ""},
		{"tcp:10.0.0.2:40002-10.0.0.1:3128:15", "connect", "CONNECT", "secure.example", 8443, "secure.example:8443", 407, l(con1), l(deny), ""},
		{"tcp:10.0.0.2:40002-10.0.0.1:3128:15#2", "connect", "CONNECT", "secure.example", 8443, "secure.example:8443", 200, l(con2) + int64(len(hello)), l(ok) + 2000, "inner.example"},
	}
	sort.Slice(gotB, func(i, j int) bool { return gotB[i].Key < gotB[j].Key })
	if !reflect.DeepEqual(gotB, want) {
		t.Errorf("got:\n%+v\nwant:\n%+v", gotB, want)
	}
}

// TestDNSNamesConnections: a connection with no SNI or Host is named by an
// earlier DNS answer, and says so.
func TestDNSNamesConnections(t *testing.T) {
	s := newSynth(t, linkEthernet)
	q := &layers.DNS{ID: 77, RD: true, Questions: []layers.DNSQuestion{{Name: []byte("Files.Example"), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	s.udp("10.0.0.2:5555", "10.0.0.53:53", serializeDNS(t, q))
	a := *q
	a.QR = true
	a.Answers = []layers.DNSResourceRecord{{Name: []byte("Files.Example"), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 60, IP: net.IP{192, 0, 2, 44}}}
	s.udp("10.0.0.53:53", "10.0.0.2:5555", serializeDNS(t, &a))
	c := s.dial("10.0.0.2:40003", "192.0.2.44:445")
	c.handshake()
	c.send(true, []byte{0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	c.close()
	res := readBytes(t, s.pcap(false, false))
	if res.err != nil || len(res.flows) != 2 {
		t.Fatalf("err %v, %d flows", res.err, len(res.flows))
	}
	d, f := res.flows[0].f, res.flows[1].f
	if d.Kind != flow.KindDNS || d.Host != "files.example" || d.Note != "A query; answers 192.0.2.44" || d.Client != "10.0.0.2" || d.ClientPort != 5555 ||
		!d.End.Equal(d.Start.Add(10*time.Millisecond)) {
		t.Errorf("dns flow %+v", d)
	}
	if f.Kind != flow.KindTCP || f.Host != "files.example" || f.Note != "host named from DNS answer" || f.BytesUp != 14 || f.Port != 445 {
		t.Errorf("tcp flow %+v", f)
	}
}

func serializeDNS(t testing.TB, d *layers.DNS) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// TestConnectionLifetimes: an idle connection times out, a closed one is
// emitted when it closes (before the end of the file), and reused ports
// make a second connection.
func TestConnectionLifetimes(t *testing.T) {
	s := newSynth(t, linkEthernet)
	a := s.dial("10.0.0.2:40010", "10.0.0.9:22")
	a.handshake()
	a.send(true, []byte("SSH-2.0-test\r\n"))
	s.now = s.now.Add(idleTimeout + time.Second)
	a.send(true, []byte("later"))
	b := s.dial("10.0.0.2:40011", "10.0.0.9:22")
	b.handshake()
	b.close()
	b.cseq += 5000
	b.handshake()
	b.close()
	var order []string
	res := result{}
	res.err = read(context.Background(), bytes.NewReader(s.pcap(false, false)), func(f flow.Flow, _ []int) error {
		order = append(order, f.Key)
		res.flows = append(res.flows, got{f: f})
		return nil
	}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	want := []string{
		"tcp:10.0.0.2:40010-10.0.0.9:22:1",  // timed out by the time packet 5 came
		"tcp:10.0.0.2:40011-10.0.0.9:22:6",  // closed, then the port came back with a new SYN
		"tcp:10.0.0.2:40010-10.0.0.9:22:5",  // the late packet, at the end of the file
		"tcp:10.0.0.2:40011-10.0.0.9:22:12", // the second use of the port, at the end
	}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("flows emitted in order %q, want %q", order, want)
	}
	if res.flows[0].f.BytesUp != 14 || res.flows[2].f.BytesUp != 5 {
		t.Errorf("bytes up %d and %d, want 14 and 5", res.flows[0].f.BytesUp, res.flows[2].f.BytesUp)
	}
}

// TestDamage: a damaged packet is skipped with its number and offset, and a
// file that breaks off yields the flows before the break and an error
// naming the offset.
func TestDamage(t *testing.T) {
	s := newSynth(t, linkEthernet)
	c := s.dial("10.0.0.2:40020", "10.0.0.9:80")
	c.handshake()
	c.send(true, []byte("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"))
	// Packet 5: an IPv4 header with a header length of 12 bytes.
	bad := append([]byte(nil), s.pkts[3].data...)
	bad[14] = 0x43
	s.pkts = append(s.pkts, rec{s.now, bad})
	c.send(false, []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	data := s.pcap(false, false)

	res := readBytes(t, data)
	off5 := 24
	for _, p := range s.pkts[:4] {
		off5 += 16 + len(p.data)
	}
	wantSkip := "packet 5 (offset " + hexOff(off5) + "): IPv4 header length 12 invalid (" + itoa(len(bad)-14) + " bytes captured)"
	if len(res.skips) != 1 || res.skips[0] != wantSkip {
		t.Errorf("skips %q, want %q", res.skips, wantSkip)
	}
	f := onlyFlowIgnoringSkips(t, res)
	if f.Status != 200 {
		t.Errorf("flow %+v", f)
	}

	// Cut the file inside the last packet.
	off6 := off5 + 16 + len(bad)
	cut := data[:off6+16+10]
	res = readBytes(t, cut)
	if res.err == nil || !errors.Is(res.err, io.ErrUnexpectedEOF) || !strings.Contains(res.err.Error(), "packet 6 at offset "+itoa(off6)) {
		t.Errorf("error %v, want one naming packet 6 at offset %d", res.err, off6)
	}
	if len(res.flows) != 1 || res.flows[0].f.Method != "GET" || res.flows[0].f.Status != 0 {
		t.Errorf("flows before the cut: %+v", res.flows)
	}

	// Not a capture at all.
	res = readBytes(t, []byte("GET / HTTP/1.1\r\n\r\n"))
	if res.err == nil || !strings.Contains(res.err.Error(), "not a pcap or pcapng file") {
		t.Errorf("error %v", res.err)
	}
	// An unsupported link type.
	s2 := newSynth(t, 147)
	s2.pkts = []rec{{t0, []byte{1, 2, 3}}}
	res = readBytes(t, s2.pcap(false, false))
	if res.err == nil || !strings.Contains(res.err.Error(), "link type 147 not supported") {
		t.Errorf("error %v", res.err)
	}
}

func onlyFlowIgnoringSkips(t *testing.T, res result) flow.Flow {
	t.Helper()
	res.skips = nil
	return onlyFlow(t, res)
}

func hexOff(n int) string { return "0x" + itoaBase(n, 16) }

func itoa(n int) string { return itoaBase(n, 10) }

func itoaBase(n, base int) string {
	if n == 0 {
		return "0"
	}
	const digits = "0123456789abcdef"
	var b []byte
	for ; n > 0; n /= base {
		b = append([]byte{digits[n%base]}, b...)
	}
	return string(b)
}

// TestPcapngGuard: damaged pcapng blocks stop the reader with an error
// that names the offset, instead of huge allocations or panics inside
// gopacket.
func TestPcapngGuard(t *testing.T) {
	s := newSynth(t, linkEthernet)
	c := s.dial("10.0.0.2:40030", "10.0.0.9:443")
	c.handshake()
	good := s.pcapng()
	// Find the first Enhanced Packet Block.
	off := 0
	for off+8 <= len(good) {
		typ := binary.LittleEndian.Uint32(good[off:])
		if typ == ngEPB {
			break
		}
		off += int(binary.LittleEndian.Uint32(good[off+4:]))
	}
	if off+8 > len(good) {
		t.Fatal("no EPB in the capture")
	}
	cases := map[string]struct {
		mutate func(b []byte)
		want   string
	}{
		"huge captured length": {func(b []byte) { binary.LittleEndian.PutUint32(b[off+20:], 0xfffffff0) }, "does not fit the block"},
		"odd block length":     {func(b []byte) { binary.LittleEndian.PutUint32(b[off+4:], 13) }, "block length 13 invalid"},
		"unknown interface":    {func(b []byte) { binary.LittleEndian.PutUint32(b[off+8:], 5) }, "packet of interface 5"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			tc.mutate(b)
			res := readBytes(t, b)
			if res.err == nil || !strings.Contains(res.err.Error(), tc.want) || !strings.Contains(res.err.Error(), "offset "+itoa(off)) {
				t.Errorf("error %v, want %q at offset %d", res.err, tc.want, off)
			}
		})
	}
	t.Run("if_tsresol out of range", func(t *testing.T) {
		// An IDB with if_tsresol 0x7f would make gopacket divide by 10^127
		// (zero in 64 bits).
		var b bytes.Buffer
		shb := []byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0}
		idb := []byte{1, 0, 0, 0, 32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 4, 0, 9, 0, 1, 0, 0x7f, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0}
		b.Write(shb)
		b.Write(idb)
		res := readBytes(t, b.Bytes())
		if res.err == nil || !strings.Contains(res.err.Error(), "if_tsresol 0x7f out of range") {
			t.Errorf("error %v", res.err)
		}
	})
}

// TestFailedConnections: a SYN left unanswered and a SYN answered with a
// reset say so.
func TestFailedConnections(t *testing.T) {
	s := newSynth(t, linkEthernet)
	a := s.dial("10.0.0.2:40040", "192.0.2.1:443")
	isn := a.cseq
	a.seg(true, "S", nil, nil)
	a.seg(true, "S", nil, &isn) // retransmitted
	b := s.dial("10.0.0.2:40041", "192.0.2.1:443")
	b.seg(true, "S", nil, nil)
	b.seg(false, "RA", nil, nil)
	c := s.dial("10.0.0.2:40042", "192.0.2.1:443")
	c.handshake()
	c.seg(false, "RA", nil, nil)
	res := readBytes(t, s.pcap(false, false))
	got := map[string]string{}
	for _, g := range res.flows {
		got[g.f.Key] = g.f.Error
	}
	want := map[string]string{
		"tcp:10.0.0.2:40040-192.0.2.1:443:1": "no answer from the server",
		"tcp:10.0.0.2:40041-192.0.2.1:443:3": "connection refused (RST)",
		"tcp:10.0.0.2:40042-192.0.2.1:443:5": "",
	}
	if res.err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("err %v, errors by flow %q, want %q", res.err, got, want)
	}
}

// TestClosedLeaveEarly: a closed connection is emitted shortly after it
// closes even while an older connection stays open, so memory holds only
// the open ones.
func TestClosedLeaveEarly(t *testing.T) {
	s := newSynth(t, linkEthernet)
	a := s.dial("10.0.0.2:40050", "10.0.0.9:443")
	a.handshake() // stays open
	b := s.dial("10.0.0.2:40051", "10.0.0.9:443")
	b.handshake()
	b.close()
	s.now = s.now.Add(closedLinger + time.Second)
	c := s.dial("10.0.0.2:40052", "10.0.0.9:443")
	c.seg(true, "S", nil, nil)
	var order []string
	err := read(context.Background(), bytes.NewReader(s.pcap(false, false)), func(f flow.Flow, _ []int) error {
		order = append(order, f.Key)
		return nil
	}, nil)
	want := []string{
		"tcp:10.0.0.2:40051-10.0.0.9:443:4",  // swept when packet 10 came
		"tcp:10.0.0.2:40050-10.0.0.9:443:1",  // at the end of the file
		"tcp:10.0.0.2:40052-10.0.0.9:443:10", // at the end of the file
	}
	if err != nil || !reflect.DeepEqual(order, want) {
		t.Errorf("err %v, order %q, want %q", err, order, want)
	}
}

// TestChunkedKeepAlive: chunked bodies in both directions are followed to
// their end, so the next message is found even when it shares a segment
// with the end of the previous one.
func TestChunkedKeepAlive(t *testing.T) {
	s := newSynth(t, linkEthernet)
	c := s.dial("10.0.0.2:40060", "10.0.0.9:80")
	c.handshake()
	req1 := "POST /a HTTP/1.1\r\nHost: c.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	req2 := "GET /b HTTP/1.1\r\nHost: c.example\r\n\r\n"
	resp1 := "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	resp1b := "3\r\nxyz\r\n0\r\nTrailer: x\r\n\r\n"
	resp2 := "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	c.send(true, []byte(req1[:70]))
	c.send(true, []byte(req1[70:]+req2)) // the end of one request and the next in one segment
	c.send(false, []byte(resp1))
	c.send(false, []byte(resp1b+resp2))
	c.close()
	res := readBytes(t, s.pcap(false, false))
	if res.err != nil || len(res.flows) != 2 {
		t.Fatalf("err %v, %d flows", res.err, len(res.flows))
	}
	a, b := res.flows[0].f, res.flows[1].f
	if a.Method != "POST" || a.Status != 201 || a.BytesUp != int64(len(req1)) || a.BytesDown != int64(len(resp1+resp1b)) {
		t.Errorf("first %+v", a)
	}
	if b.Method != "GET" || b.URL != "http://c.example/b" || b.Status != 404 || b.BytesUp != int64(len(req2)) || b.BytesDown != int64(len(resp2)) {
		t.Errorf("second %+v", b)
	}
}

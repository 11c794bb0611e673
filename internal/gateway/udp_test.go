package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/pcap"
)

// frame is an Ethernet frame to dst MAC carrying ls.
func frame(t *testing.T, dst net.HardwareAddr, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	if _, ok := ls[0].(*layers.IPv6); ok {
		eth.EthernetType = layers.EthernetTypeIPv6
	}
	if _, ok := ls[0].(*layers.ARP); ok {
		eth.EthernetType = layers.EthernetTypeARP
	}
	for _, l := range ls {
		nl, ok := ls[0].(gopacket.NetworkLayer)
		if !ok {
			continue
		}
		switch l := l.(type) {
		case *layers.UDP:
			_ = l.SetNetworkLayerForChecksum(nl)
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(nl)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, append([]gopacket.SerializableLayer{eth}, ls...)...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestUDPFilter runs the LAN capture's kernel filter in x/net/bpf's
// virtual machine: forwarded unicast UDP passes, whatever its port but
// DNS's and DHCP's; TCP, broadcast, multicast, later fragments, ARP and
// IPv6 UDP behind an extension header do not.
func TestUDPFilter(t *testing.T) {
	vm, err := bpf.NewVM(disassemble(t, udpFilter()))
	if err != nil {
		t.Fatal(err)
	}
	gw := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	v4 := func(proto layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: net.IP{10, 77, 0, 2}, DstIP: net.IP{198, 18, 0, 1}}
	}
	v6 := func(next layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP("fd00:77::2"), DstIP: net.ParseIP("fd00:99::1")}
	}
	udp := func(sport, dport uint16) *layers.UDP {
		return &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	}
	payload := gopacket.Payload("0123456789")
	withOptions := v4(layers.IPProtocolUDP)
	withOptions.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}} // NOPs, end: IHL 6
	later := v4(layers.IPProtocolUDP)
	later.FragOffset = 185
	firstFragment := v4(layers.IPProtocolUDP)
	firstFragment.Flags = layers.IPv4MoreFragments
	hbh := v6(layers.IPProtocolIPv6HopByHop)
	hbhExt := &layers.IPv6HopByHop{}
	hbhExt.NextHeader = layers.IPProtocolUDP
	hbhExt.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}} // PadN: 8 bytes in all
	cases := []struct {
		name  string
		frame []byte
		pass  bool
	}{
		{"QUIC to 443", frame(t, gw, v4(layers.IPProtocolUDP), udp(50001, 443), payload), true},
		{"NTP", frame(t, gw, v4(layers.IPProtocolUDP), udp(123, 123), payload), true},
		{"an answer to the device", frame(t, net.HardwareAddr{2, 0, 0, 0, 0, 2}, v4(layers.IPProtocolUDP), udp(443, 50001), payload), true},
		{"IPv4 options", frame(t, gw, withOptions, udp(40000, 9999), payload), true},
		{"first fragment", frame(t, gw, firstFragment, udp(40000, 9999), payload), true},
		{"IPv6 QUIC", frame(t, gw, v6(layers.IPProtocolUDP), udp(50001, 443), payload), true},
		{"DNS query", frame(t, gw, v4(layers.IPProtocolUDP), udp(40000, 53), payload), false},
		{"DNS answer", frame(t, gw, v4(layers.IPProtocolUDP), udp(53, 40000), payload), false},
		{"DHCP renewal", frame(t, gw, v4(layers.IPProtocolUDP), udp(68, 67), payload), false},
		{"DHCPv6", frame(t, gw, v6(layers.IPProtocolUDP), udp(546, 547), payload), false},
		{"IPv6 DNS", frame(t, gw, v6(layers.IPProtocolUDP), udp(40000, 53), payload), false},
		{"TCP", frame(t, gw, v4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 40000, DstPort: 443, SYN: true, Window: 100}), false},
		{"IPv6 TCP", frame(t, gw, v6(layers.IPProtocolTCP), &layers.TCP{SrcPort: 40000, DstPort: 443, SYN: true, Window: 100}), false},
		{"broadcast", frame(t, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, v4(layers.IPProtocolUDP), udp(40000, 9999), payload), false},
		{"multicast (mDNS)", frame(t, net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 0xfb}, v4(layers.IPProtocolUDP), udp(5353, 5353), payload), false},
		{"later fragment", frame(t, gw, later, gopacket.Payload("01234567rest")), false},
		{"IPv6 extension header", frame(t, gw, hbh, hbhExt, udp(40000, 9999), payload), false},
		{"ARP", frame(t, gw, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: []byte{2, 0, 0, 0, 0, 2}, SourceProtAddress: []byte{10, 77, 0, 2}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 77, 0, 1}}), false},
	}
	for _, tc := range cases {
		n, err := vm.Run(tc.frame)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if pass := n > 0; pass != tc.pass {
			t.Errorf("%s: passes %v (%d bytes), want %v", tc.name, pass, n, tc.pass)
		}
		if tc.pass && n < len(tc.frame) {
			t.Errorf("%s: %d bytes of %d kept", tc.name, n, len(tc.frame))
		}
	}
}

func disassemble(t *testing.T, raw []bpf.RawInstruction) []bpf.Instruction {
	t.Helper()
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the filter does not disassemble")
	}
	return prog
}

// TestNotedUDP: a captured flow becomes the gateway's, and a server known
// by its address is named as DNS named it for that client only.
func TestNotedUDP(t *testing.T) {
	for _, dropQUIC := range []bool{false, true} {
		t.Run(fmt.Sprintf("dropQUIC=%v", dropQUIC), func(t *testing.T) { testNotedUDP(t, dropQUIC) })
	}
}

// testNotedUDP: with dropQUIC, UDP to port 443 is noted as denied, the
// rest as without it.
func testNotedUDP(t *testing.T, dropQUIC bool) {
	nm := newNames(8)
	nm.learn(netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("198.18.0.123"), "time.windows.com")
	var got []flow.Flow
	rec := notedUDP(func(f flow.Flow) { got = append(got, f) }, nm, dropQUIC)
	for _, f := range []flow.Flow{
		{Key: "k1", Client: "10.77.0.2", Host: "198.18.0.123", Port: 123, Kind: flow.KindUDP, Note: "NTP version 4", Source: flow.SourcePcap, SourceFile: "live:lan0"},
		{Key: "k2", Client: "10.77.0.3", Host: "198.18.0.123", Port: 123, Kind: flow.KindUDP, Source: flow.SourcePcap, SourceFile: "live:lan0"},
		{Key: "k3", Client: "10.77.0.2", Host: "ztd.dds.microsoft.com", SNI: "ztd.dds.microsoft.com", Port: 443, Kind: flow.KindQUIC, Source: flow.SourcePcap, SourceFile: "live:lan0"},
	} {
		rec(f)
	}
	want := []flow.Flow{
		{Key: "k1", Client: "10.77.0.2", Host: "time.windows.com", Port: 123, Kind: flow.KindUDP, Note: "NTP version 4; destination 198.18.0.123:123; host named from DNS answer", Source: flow.SourceGateway, Decision: flow.DecisionAllowed},
		{Key: "k2", Client: "10.77.0.3", Host: "198.18.0.123", Port: 123, Kind: flow.KindUDP, Source: flow.SourceGateway, Decision: flow.DecisionAllowed},
		{Key: "k3", Client: "10.77.0.2", Host: "ztd.dds.microsoft.com", SNI: "ztd.dds.microsoft.com", Port: 443, Kind: flow.KindQUIC, Source: flow.SourceGateway, Decision: flow.DecisionAllowed},
	}
	if dropQUIC {
		want[2].Decision, want[2].Reason = flow.DecisionDenied, quicDropped
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

// TestQUICInitialDecodes: the Initial the device of TestGateway sends is
// read by the pcap importer's decoder (the one the gateway notes UDP
// with) to its SNI and ALPN.
func TestQUICInitialDecodes(t *testing.T) {
	initial, err := quicInitial("ztd.dds.microsoft.com", "h3")
	if err != nil {
		t.Fatal(err)
	}
	if len(initial) != 1200 {
		t.Errorf("%d bytes, want 1200", len(initial))
	}
	var got []flow.Flow
	s := pcap.NewStream(context.Background(), "t-", "live:t", func(f flow.Flow) error { got = append(got, f); return nil }, nil)
	s.NoteUDP(time.Minute)
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 77, 0, 2}, DstIP: net.IP{198, 18, 0, 1}}
	if err := s.Packet(time.Now(), frame(t, net.HardwareAddr{2, 0, 0, 0, 0, 1}, ip, &layers.UDP{SrcPort: 50001, DstPort: 443}, gopacket.Payload(initial))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Kind != flow.KindQUIC || got[1].SNI != "ztd.dds.microsoft.com" || got[1].ALPN != "h3" || got[1].TLSVersion != "1.3" || got[1].BytesUp != 1200 {
		t.Errorf("flows %+v", got)
	}
}

package gateway

import (
	"net/netip"
	"time"

	"golang.org/x/net/bpf"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// DefaultUDPIdle is how long a UDP association the gateway notes may be
// silent before its flow ends (conntrack keeps an answered one 120 s, an
// unanswered one 30 s).
const DefaultUDPIdle = time.Minute

// Ports whose UDP the gateway does not note: DNS (the forwarder records
// every query itself) and DHCP for IPv4 and IPv6 (the LAN's own
// housekeeping, never forwarded).
var unnotedPorts = []uint32{53, 67, 68, 546, 547}

// udpFilter is the kernel filter of the LAN-side capture: it passes only
// the UDP frames the gateway forwards and notes, so that the TCP it
// relays (redirected to its listener) costs that socket nothing. A frame
// passes when it is unicast (broadcast and multicast, such as DHCP
// discovery, mDNS or SSDP, stay on the LAN), IPv4 UDP (the first fragment)
// or IPv6 UDP right after the fixed header, with neither port in
// unnotedPorts. Offsets are of an untagged Ethernet frame.
func udpFilter() []bpf.RawInstruction {
	type jump struct {
		at   int
		yes  string // label when the condition holds ("" = next)
		no   string // label when it does not ("" = next)
		cond bpf.JumpTest
		val  uint32
	}
	var prog []bpf.Instruction
	var jumps []jump
	labels := map[string]int{}
	emit := func(ins ...bpf.Instruction) { prog = append(prog, ins...) }
	jumpIf := func(cond bpf.JumpTest, val uint32, yes, no string) {
		jumps = append(jumps, jump{at: len(prog), yes: yes, no: no, cond: cond, val: val})
		prog = append(prog, nil)
	}
	label := func(name string) { labels[name] = len(prog) }
	ports := func() {
		// A holds a port.
		for _, p := range unnotedPorts {
			jumpIf(bpf.JumpEqual, p, "reject", "")
		}
	}

	emit(bpf.LoadAbsolute{Off: 0, Size: 1}) // destination MAC's first byte
	jumpIf(bpf.JumpBitsSet, 1, "reject", "")
	emit(bpf.LoadAbsolute{Off: 12, Size: 2}) // EtherType
	jumpIf(bpf.JumpEqual, 0x86dd, "ipv6", "")
	jumpIf(bpf.JumpEqual, 0x0800, "", "reject")
	emit(bpf.LoadAbsolute{Off: 14 + 9, Size: 1}) // protocol
	jumpIf(bpf.JumpEqual, 17, "", "reject")
	emit(bpf.LoadAbsolute{Off: 14 + 6, Size: 2}) // flags, fragment offset
	jumpIf(bpf.JumpBitsSet, 0x1fff, "reject", "")
	emit(bpf.LoadMemShift{Off: 14}) // X: the IPv4 header's length
	emit(bpf.LoadIndirect{Off: 14, Size: 2})
	ports()
	emit(bpf.LoadIndirect{Off: 14 + 2, Size: 2})
	ports()
	emit(bpf.Jump{}) // to accept, filled in below
	jumpToAccept := len(prog) - 1
	label("ipv6")
	emit(bpf.LoadAbsolute{Off: 14 + 6, Size: 1}) // next header
	jumpIf(bpf.JumpEqual, 17, "", "reject")
	emit(bpf.LoadAbsolute{Off: 14 + 40, Size: 2})
	ports()
	emit(bpf.LoadAbsolute{Off: 14 + 42, Size: 2})
	ports()
	label("accept")
	emit(bpf.RetConstant{Val: 1 << 18}) // the whole frame
	label("reject")
	emit(bpf.RetConstant{Val: 0})

	prog[jumpToAccept] = bpf.Jump{Skip: uint32(labels["accept"] - jumpToAccept - 1)}
	skip := func(from int, to string) uint8 {
		if to == "" {
			return 0
		}
		return uint8(labels[to] - from - 1)
	}
	for _, j := range jumps {
		prog[j.at] = bpf.JumpIf{Cond: j.cond, Val: j.val, SkipTrue: skip(j.at, j.yes), SkipFalse: skip(j.at, j.no)}
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		panic("gateway: the UDP filter does not assemble: " + err.Error())
	}
	return raw
}

// notedUDP turns a flow of the LAN-side capture into the gateway's: its
// source is the gateway, and a server known only by its address is named
// as DNS named it for that client (the forwarder's answers), as the
// transparent listener names TCP.
func notedUDP(record func(flow.Flow), nm *names, dropQUIC bool) func(flow.Flow) {
	return func(f flow.Flow) {
		f.Source, f.SourceFile = flow.SourceGateway, ""
		f.Decision = flow.DecisionAllowed
		if dropQUIC && f.Port == 443 {
			f.Decision = flow.DecisionDenied
			f.Reason = quicDropped
		}
		server, err1 := netip.ParseAddr(f.Host)
		client, err2 := netip.ParseAddr(f.Client)
		if err1 == nil && err2 == nil {
			if name := nm.name(client, server); name != "" {
				f.Host = name
				addNote(&f, "destination "+netip.AddrPortFrom(server, uint16(f.Port)).String()+"; host named from DNS answer")
			}
		}
		if record != nil {
			record(f)
		}
	}
}

// quicDropped is the Reason of a noted UDP 443 flow under Plan.DropQUIC.
const quicDropped = "UDP 443 (QUIC) dropped while the gateway enforces a list: clients fall back to TCP, where it applies"

func addNote(f *flow.Flow, s string) {
	if f.Note == "" {
		f.Note = s
	} else {
		f.Note += "; " + s
	}
}

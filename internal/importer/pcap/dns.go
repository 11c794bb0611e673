package pcap

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// isDNSPort reports whether port is DNS (53), multicast DNS (5353) or
// LLMNR (5355), which share the DNS message format.
func isDNSPort(port uint16) bool { return port == 53 || port == 5353 || port == 5355 }

type dnsKey struct {
	client, server netip.AddrPort
	id             uint16
}

// dnsQuery is a DNS query waiting for its answer, or answered.
type dnsQuery struct {
	key        dnsKey
	name       string
	qtype      dnsmessage.Type
	pkt        int
	start, end time.Time
	up, down   int64
	answered   bool
	rcode      dnsmessage.RCode
	addrs      []string
}

func (q *dnsQuery) flow() flow.Flow {
	f := flow.Flow{
		Key:        fmt.Sprintf("dns:%s-%s:%d:%d", q.key.client, q.key.server, q.key.id, q.pkt),
		Start:      q.start,
		End:        q.end,
		Client:     q.key.client.Addr().Unmap().String(),
		ClientPort: int(q.key.client.Port()),
		Kind:       flow.KindDNS,
		Host:       q.name,
		Port:       int(q.key.server.Port()),
		BytesUp:    q.up,
		BytesDown:  q.down,
	}
	if f.End.IsZero() {
		f.End = f.Start
	}
	typ := strings.TrimPrefix(q.qtype.String(), "Type")
	switch {
	case q.up == 0:
		f.Note = typ + " query; answer without its query in the capture"
	case !q.answered:
		f.Note = typ + " query"
		f.Error = "no answer in the capture"
	default:
		f.Note = typ + " query"
	}
	if q.answered && q.rcode != dnsmessage.RCodeSuccess {
		f.Error = rcodeName(q.rcode)
	}
	if len(q.addrs) > 0 {
		f.Note += "; answers " + strings.Join(q.addrs, ", ")
	}
	return f
}

const maxAnswerAddrs = 8

// dnsPacket handles one DNS, mDNS or LLMNR message over UDP.
func (rd *reader) dnsPacket(ts time.Time, p *packet) {
	var m dnsmessage.Parser
	h, err := m.Start(p.payload)
	if err != nil {
		rd.skip(fmt.Sprintf("packet %d (offset %#x)", rd.pkt, rd.off), fmt.Errorf("DNS message: %w", err))
		return
	}
	var name string
	var qtype dnsmessage.Type
	if q, err := m.Question(); err == nil {
		name = strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
		qtype = q.Type
	}
	if !h.Response {
		if name == "" {
			return
		}
		k := dnsKey{client: p.src, server: p.dst, id: h.ID}
		if _, dup := rd.dns[k]; dup {
			return // a retransmission
		}
		rd.dns[k] = &dnsQuery{key: k, name: name, qtype: qtype, pkt: rd.pkt, start: ts, up: int64(p.wireLen)}
		return
	}
	// A response: learn the addresses it gives, named by the question
	// (the name the client asked for, not the end of a CNAME chain).
	var addrs []string
	if err := m.SkipAllQuestions(); err == nil {
		for {
			ah, err := m.AnswerHeader()
			if err != nil {
				break
			}
			var addr netip.Addr
			switch ah.Type {
			case dnsmessage.TypeA:
				r, err := m.AResource()
				if err != nil {
					break
				}
				addr = netip.AddrFrom4(r.A)
			case dnsmessage.TypeAAAA:
				r, err := m.AAAAResource()
				if err != nil {
					break
				}
				addr = netip.AddrFrom16(r.AAAA)
			default:
				if err := m.SkipAnswer(); err != nil {
					break
				}
				continue
			}
			if !addr.IsValid() {
				break
			}
			owner := name
			if owner == "" {
				owner = strings.ToLower(strings.TrimSuffix(ah.Name.String(), "."))
			}
			rd.learnName(addr, owner)
			if len(addrs) < maxAnswerAddrs {
				addrs = append(addrs, addr.String())
			}
		}
	}
	k := dnsKey{client: p.dst, server: p.src, id: h.ID}
	q := rd.dns[k]
	if q == nil {
		if name == "" {
			return // unsolicited mDNS announcement: names learnt, no flow
		}
		if q = rd.dnsDone[k]; q != nil && q.name == name {
			return // a second answer to a query already answered
		}
		q = &dnsQuery{key: k, name: name, qtype: qtype, pkt: rd.pkt, start: ts}
	} else {
		delete(rd.dns, k)
	}
	q.end = ts
	q.answered = true
	q.rcode = h.RCode
	q.down = int64(p.wireLen)
	q.addrs = addrs
	rd.dnsDone[k] = q
	rd.out(q.flow(), nil)
}

// rcodeName spells a DNS response code as dig does.
func rcodeName(c dnsmessage.RCode) string {
	switch c {
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	}
	return fmt.Sprintf("RCODE%d", c)
}

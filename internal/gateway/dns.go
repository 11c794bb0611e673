package gateway

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// maxAnswerAddrs is how many answer addresses a DNS flow's Note lists, as
// the pcap importer's do.
const maxAnswerAddrs = 8

// dnsTimeout limits one upstream exchange; a client retries on its own.
const dnsTimeout = 5 * time.Second

// forwarder is the recording DNS forwarder: each query goes to upstream
// over the transport it came by, the answer goes back unchanged, and the
// exchange is recorded as a flow shaped like the pcap importer's DNS
// flows (Host the question's name, Note "A query; answers …", Error the
// rcode when it is not NOERROR). Answers teach names.
type forwarder struct {
	upstream string // host:port
	record   func(flow.Flow)
	names    *names
	prefix   string // of flow Keys, unique to this run
	seq      atomic.Uint64
	udp, tcp dns.Client
	// idle holds UDP sockets to upstream for the next queries: a socket
	// a query, made anew each time, cost more than the rest of the
	// exchange.
	idle chan *dns.Conn
}

// maxIdleUpstream is how many UDP sockets to upstream wait for queries.
const maxIdleUpstream = 64

func newForwarder(upstream string, record func(flow.Flow), nm *names) *forwarder {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &forwarder{
		upstream: upstream,
		record:   record,
		names:    nm,
		prefix:   "gw-dns-" + hex.EncodeToString(b[:]) + "-",
		// The answer's size is bounded by the query's EDNS0 size, which
		// the client library reads into a buffer that large; 512 bytes
		// without EDNS0.
		udp:  dns.Client{Net: "udp", Timeout: dnsTimeout},
		tcp:  dns.Client{Net: "tcp", Timeout: dnsTimeout},
		idle: make(chan *dns.Conn, maxIdleUpstream),
	}
}

// exchange asks upstream over UDP, on a socket kept from an earlier query
// when there is one (answers to other queries, late ones, are told by
// their ID and skipped), or over TCP.
func (fw *forwarder) exchange(req *dns.Msg, tcp bool) (*dns.Msg, error) {
	if tcp {
		resp, _, err := fw.tcp.Exchange(req, fw.upstream)
		return resp, err
	}
	var co *dns.Conn
	select {
	case co = <-fw.idle:
	default:
		var err error
		if co, err = fw.udp.Dial(fw.upstream); err != nil {
			return nil, err
		}
	}
	resp, _, err := fw.udp.ExchangeWithConn(req, co)
	if err != nil {
		co.Close() // it may yet receive the late answer
		return nil, err
	}
	select {
	case fw.idle <- co:
	default:
		co.Close()
	}
	return resp, nil
}

// close closes the idle sockets to upstream.
func (fw *forwarder) close() {
	for {
		select {
		case co := <-fw.idle:
			co.Close()
		default:
			return
		}
	}
}

// ServeDNS forwards one query and records it.
func (fw *forwarder) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	client := addrPortOf(w.RemoteAddr())
	local := addrPortOf(w.LocalAddr())
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	resp, err := fw.exchange(req, tcp)
	f := flow.Flow{
		Key:        fw.prefix + strconv.FormatUint(fw.seq.Add(1), 10),
		Start:      start,
		Client:     client.Addr().String(),
		ClientPort: int(client.Port()),
		Source:     flow.SourceGateway,
		Kind:       flow.KindDNS,
		Port:       int(local.Port()),
		BytesUp:    int64(req.Len()),
		Decision:   flow.DecisionAllowed,
	}
	typ := "query"
	if len(req.Question) > 0 {
		q := req.Question[0]
		f.Host = strings.ToLower(strings.TrimSuffix(q.Name, "."))
		typ = dnsType(q.Qtype) + " query"
	}
	f.Note = typ
	if err != nil {
		// The client gets an answer that says the server failed, at once,
		// rather than waiting for its own timeout.
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		resp = m
		f.Error = fmt.Sprintf("upstream %s: %v", fw.upstream, err)
	} else if resp.Rcode != dns.RcodeSuccess {
		f.Error = rcodeName(resp.Rcode)
	}
	f.BytesDown = int64(resp.Len())
	f.End = time.Now()
	var addrs []string
	for _, rr := range resp.Answer {
		var a netip.Addr
		switch rr := rr.(type) {
		case *dns.A:
			a, _ = netip.AddrFromSlice(rr.A.To4())
		case *dns.AAAA:
			a, _ = netip.AddrFromSlice(rr.AAAA.To16())
		}
		if !a.IsValid() {
			continue
		}
		// Named by the question (the name the client asked for, not the
		// end of a CNAME chain), as the pcap importer names them.
		if f.Host != "" {
			fw.names.learn(client.Addr(), a, f.Host)
		}
		if len(addrs) < maxAnswerAddrs {
			addrs = append(addrs, a.String())
		}
	}
	if len(addrs) > 0 {
		f.Note += "; answers " + strings.Join(addrs, ", ")
	}
	// Recorded before the client has its answer: once it has, the flow
	// is there (a shutdown right after cannot lose it).
	if fw.record != nil {
		fw.record(f)
	}
	_ = w.WriteMsg(resp) // a client gone is its business; UDP writes do not fail otherwise
}

// dnsType is the name of a query type ("A", "AAAA", "TYPE65").
func dnsType(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// rcodeName names an rcode as the pcap importer does.
func rcodeName(rc int) string {
	switch rc {
	case dns.RcodeFormatError:
		return "FORMERR"
	case dns.RcodeServerFailure:
		return "SERVFAIL"
	case dns.RcodeNameError:
		return "NXDOMAIN"
	case dns.RcodeNotImplemented:
		return "NOTIMP"
	case dns.RcodeRefused:
		return "REFUSED"
	}
	return "RCODE" + strconv.Itoa(rc)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// ResolvConfUpstream returns the first name server of the resolver
// configuration file path (/etc/resolv.conf) as host:port, the upstream
// the forwarder uses when none is given.
func ResolvConfUpstream(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("DNS upstream: %w (give --dns-upstream)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			return "", fmt.Errorf("DNS upstream: %s line %d: bad nameserver %q", path, line, fields[1])
		}
		// A local stub (systemd-resolved's 127.0.0.53) is fine: it
		// answers this machine, which is who asks it.
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("DNS upstream: reading %s: %w", path, err)
	}
	return "", fmt.Errorf("DNS upstream: no nameserver in %s (give --dns-upstream)", path)
}

// ParseUpstream checks a --dns-upstream value: an address with or without
// a port (53).
func ParseUpstream(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	return "", fmt.Errorf("DNS upstream %q: not an IP address or IP:port", s)
}

package gateway

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// startDNS serves h on a loopback UDP port until the test ends.
func startDNS(t *testing.T, h dns.Handler) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	s := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.Shutdown() })
	return pc.LocalAddr().String()
}

// TestForwarder: each query is answered as the upstream answered it and
// recorded as a flow shaped like the pcap importer's; A answers name the
// client's later connections; a dead upstream gives SERVFAIL at once.
func TestForwarder(t *testing.T) {
	upstream := startDNS(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case strings.EqualFold(q.Name, "ztd.dds.microsoft.com.") && q.Qtype == dns.TypeA:
			for _, a := range []string{"198.18.0.1", "198.18.0.9"} {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(a)})
			}
		case q.Name == "nowhere.example.":
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	}))
	var mu sync.Mutex
	var flows []flow.Flow
	nm := newNames(maxNames)
	fw := newForwarder(upstream, func(f flow.Flow) { mu.Lock(); flows = append(flows, f); mu.Unlock() }, nm)
	addr := startDNS(t, fw)
	c := dns.Client{Timeout: 5 * time.Second}
	ask := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		resp, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return resp
	}
	if resp := ask("ZTD.dds.microsoft.com.", dns.TypeA); len(resp.Answer) != 2 || resp.Rcode != dns.RcodeSuccess {
		t.Errorf("A answer %v", resp)
	}
	if resp := ask("nowhere.example.", dns.TypeAAAA); resp.Rcode != dns.RcodeNameError {
		t.Errorf("NXDOMAIN answer %v", resp)
	}
	dead := newForwarder("127.0.0.1:1", nil, nm) // nothing listens on port 1
	dead.udp.Timeout = 200 * time.Millisecond
	dead.record = fw.record
	resp, _, err := c.Exchange(func() *dns.Msg { m := new(dns.Msg); m.SetQuestion("x.example.", dns.TypeA); return m }(), startDNS(t, dead))
	if err != nil || resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("dead upstream: %v %v", resp, err)
	}

	type seen struct {
		Host, Note, Error string
		Kind              flow.Kind
		Source            flow.Source
		Client            string
	}
	var got []seen
	mu.Lock()
	defer mu.Unlock()
	for _, f := range flows {
		if f.Key == "" || f.Start.IsZero() || f.End.Before(f.Start) || f.BytesUp == 0 || f.BytesDown == 0 || f.ClientPort == 0 {
			t.Errorf("flow %+v", f)
		}
		got = append(got, seen{f.Host, f.Note, f.Error, f.Kind, f.Source, f.Client})
	}
	want := []seen{
		{"ztd.dds.microsoft.com", "A query; answers 198.18.0.1, 198.18.0.9", "", flow.KindDNS, flow.SourceGateway, "127.0.0.1"},
		{"nowhere.example", "AAAA query", "NXDOMAIN", flow.KindDNS, flow.SourceGateway, "127.0.0.1"},
		{"x.example", "A query", "", flow.KindDNS, flow.SourceGateway, "127.0.0.1"},
	}
	if len(got) != 3 {
		t.Fatalf("flows %+v", got)
	}
	if !strings.HasPrefix(got[2].Error, "upstream 127.0.0.1:1: ") {
		t.Errorf("dead upstream's flow error %q", got[2].Error)
	}
	got[2].Error = ""
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("flow %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	lo := netip.MustParseAddr("127.0.0.1")
	if n := nm.name(lo, netip.MustParseAddr("198.18.0.9")); n != "ztd.dds.microsoft.com" {
		t.Errorf("name of 198.18.0.9: %q", n)
	}
	if n := nm.name(netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("198.18.0.9")); n != "" {
		t.Errorf("another client's name of 198.18.0.9: %q", n)
	}
}

// TestNamesBounded: the map keeps the newest max entries.
func TestNamesBounded(t *testing.T) {
	nm := newNames(3)
	c := netip.MustParseAddr("10.77.0.2")
	a := netip.MustParseAddr("198.18.0.1")
	for i, name := range []string{"a", "b", "c", "d", "e"} {
		nm.learn(c, a, "same") // an update, not an entry more
		nm.learn(c, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), name)
	}
	if n := nm.len(); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
	if nm.name(c, netip.MustParseAddr("192.0.2.4")) != "e" || nm.name(c, netip.MustParseAddr("192.0.2.0")) != "" {
		t.Errorf("kept the wrong entries")
	}
}

func TestResolvConfUpstream(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ text, want, err string }{
		{"# c\nsearch lab\nnameserver 10.0.0.53\nnameserver 1.1.1.1\n", "10.0.0.53:53", ""},
		{"nameserver fd00::53\n", "[fd00::53]:53", ""},
		{"search lab\n", "", "no nameserver in"},
		{"nameserver bogus\n", "", "line 1: bad nameserver \"bogus\""},
	} {
		p := filepath.Join(dir, "resolv.conf")
		if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ResolvConfUpstream(p)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %q %v, want %q %q", c.text, got, err, c.want, c.err)
		}
	}
	for in, want := range map[string]string{"10.88.0.2": "10.88.0.2:53", "10.88.0.2:5353": "10.88.0.2:5353", "[fd00::1]:53": "[fd00::1]:53", "fd00::1": "[fd00::1]:53"} {
		if got, err := ParseUpstream(in); got != want || err != nil {
			t.Errorf("ParseUpstream(%q) = %q %v", in, got, err)
		}
	}
	if _, err := ParseUpstream("dns.example"); err == nil || err.Error() != `DNS upstream "dns.example": not an IP address or IP:port` {
		t.Errorf("ParseUpstream(name): %v", err)
	}
}

package pcap

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// A Stream fed the frames of a capture file emits what Read emits for the
// file (keys prefixed, source named), and shows each TLS connection open
// first, as a live capture must.
func TestStreamMatchesRead(t *testing.T) {
	for _, name := range []string{"zeek_wikipedia.pcap", "zeek_tls_tls13-ech.pcap", "zeek_http_proxy.pcap"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			var want []flow.Flow
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := Read(context.Background(), f, func(fl flow.Flow) error { want = append(want, fl); return nil }, nil); err != nil {
				t.Fatal(err)
			}

			if _, err := f.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			pr, err := pcapgo.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			var got []flow.Flow
			s := NewStream(context.Background(), "cap-1-", "live:test0", func(fl flow.Flow) error { got = append(got, fl); return nil }, nil)
			for {
				data, ci, err := pr.ReadPacketData()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Packet(ci.Timestamp, data); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			opened := map[string]bool{}
			var final []flow.Flow
			for _, fl := range got {
				if !strings.HasPrefix(fl.Key, "cap-1-") || fl.SourceFile != "live:test0" || fl.Source != flow.SourcePcap {
					t.Fatalf("flow %q: source %q %q", fl.Key, fl.Source, fl.SourceFile)
				}
				fl.Key, fl.SourceFile = strings.TrimPrefix(fl.Key, "cap-1-"), ""
				if fl.Open() {
					if fl.Kind != flow.KindTLS && fl.Kind != flow.KindQUIC || fl.SNI == "" && fl.Host == "" {
						t.Errorf("open flow %+v: want a TLS connection or QUIC association named", fl)
					}
					opened[fl.Key] = true
					continue
				}
				final = append(final, fl)
			}
			if len(final) != len(want) {
				t.Fatalf("%d final flows, Read gave %d", len(final), len(want))
			}
			tls := 0
			for i := range want {
				if !slices.ContainsFunc(final, func(g flow.Flow) bool {
					return g.Key == want[i].Key && g.End.Equal(want[i].End) && g.BytesDown == want[i].BytesDown && g.SNI == want[i].SNI
				}) {
					t.Errorf("Read's flow %s not among the stream's", want[i].Key)
				}
				if want[i].Kind == flow.KindTLS && want[i].SNI != "" {
					tls++
					if !opened[want[i].Key] {
						t.Errorf("TLS flow %s (%s) was not shown open first", want[i].Key, want[i].SNI)
					}
				}
			}
			t.Logf("%d flows, %d shown open first", len(want), tls)
		})
	}
}

// streamFrames feeds the synthetic capture's frames to a Stream that notes
// UDP (idle after a minute) and returns what it emitted before Close and
// after.
func streamFrames(t *testing.T, s *synth, noteUDP bool) (before, after []flow.Flow) {
	t.Helper()
	var got []flow.Flow
	st := NewStream(context.Background(), "gw-", "live:lan0", func(fl flow.Flow) error { got = append(got, fl); return nil }, nil)
	if noteUDP {
		st.NoteUDP(time.Minute)
	}
	for _, p := range s.pkts {
		if err := st.Packet(p.ts, p.data); err != nil {
			t.Fatal(err)
		}
	}
	before = got
	got = nil
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return before, got
}

// TestStreamNoteUDP: a stream that notes UDP makes a flow of each UDP
// association that is neither DNS nor QUIC: an answered NTP request named
// by an earlier DNS answer, an unanswered one (an error), other UDP one
// way; an association idle for a minute ends then, not at Close; a QUIC
// Initial is still a quic flow, shown open as soon as its SNI is read.
// Without NoteUDP none of those UDP flows is made.
func TestStreamNoteUDP(t *testing.T) {
	s := newSynth(t, linkEthernet)
	q := &layers.DNS{ID: 9, RD: true, Questions: []layers.DNSQuestion{{Name: []byte("time.windows.com"), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	s.udp("10.0.0.2:5555", "10.0.0.1:53", serializeDNS(t, q))
	a := *q
	a.QR = true
	a.Answers = []layers.DNSResourceRecord{{Name: []byte("time.windows.com"), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 60, IP: net.IP{192, 0, 2, 5}}}
	s.udp("10.0.0.1:53", "10.0.0.2:5555", serializeDNS(t, &a))
	ntp := make([]byte, 48)
	ntp[0] = 0x23 // LI 0, version 4, mode 3 (client)
	s.udp("10.0.0.2:123", "192.0.2.5:123", ntp)
	reply := make([]byte, 48)
	reply[0] = 0x24
	s.udp("192.0.2.5:123", "10.0.0.2:123", reply)
	ntp3 := append([]byte{0x1b}, make([]byte, 47)...) // version 3
	s.udp("[fd00:77::2]:50123", "[2001:db8::7]:123", ntp3)
	s.udp("10.0.0.2:40000", "192.0.2.6:9999", []byte("0123456789"))
	hello := clientHelloBytes(t, "quic.example", "h3")[5:]
	initial := sealInitial(t, 1, []byte{1, 2, 3, 4, 5, 6, 7, 8}, 0, append(cryptoFrame(0, hello), make([]byte, 900)...))
	s.udp("10.0.0.2:50001", "192.0.2.9:443", initial)
	// Two minutes later: the first associations have been idle a minute.
	s.now = s.now.Add(2 * time.Minute)
	s.udp("10.0.0.2:40001", "192.0.2.6:9999", []byte("later"))

	before, after := streamFrames(t, s, true)
	type brief struct {
		Key, Client, Host, Note, Error string
		Kind                           flow.Kind
		Port                           int
		Up, Down                       int64
		Open                           bool
	}
	sum := func(fs []flow.Flow) []brief {
		var out []brief
		for _, f := range fs {
			out = append(out, brief{f.Key, f.Client, f.Host, f.Note, f.Error, f.Kind, f.Port, f.BytesUp, f.BytesDown, f.Open()})
		}
		return out
	}
	wantBefore := []brief{
		{"gw-dns:10.0.0.2:5555-10.0.0.1:53:9:1", "10.0.0.2", "time.windows.com", "A query; answers 192.0.2.5", "", flow.KindDNS, 53, 34, 66, false},
		{"gw-udp:10.0.0.2:50001-192.0.2.9:443:7", "10.0.0.2", "quic.example", "", "", flow.KindQUIC, 443, int64(len(initial)), 0, true},
		{"gw-udp:10.0.0.2:123-192.0.2.5:123:3", "10.0.0.2", "time.windows.com", "NTP version 4; host named from DNS answer", "", flow.KindUDP, 123, 48, 48, false},
		{"gw-udp:[fd00:77::2]:50123-[2001:db8::7]:123:5", "fd00:77::2", "2001:db8::7", "NTP version 3", "no answer from the server", flow.KindUDP, 123, 48, 0, false},
		{"gw-udp:10.0.0.2:40000-192.0.2.6:9999:6", "10.0.0.2", "192.0.2.6", "", "", flow.KindUDP, 9999, 10, 0, false},
	}
	wantAfter := []brief{
		{"gw-udp:10.0.0.2:50001-192.0.2.9:443:7", "10.0.0.2", "quic.example", "", "", flow.KindQUIC, 443, int64(len(initial)), 0, false},
		{"gw-udp:10.0.0.2:40001-192.0.2.6:9999:8", "10.0.0.2", "192.0.2.6", "", "", flow.KindUDP, 9999, 5, 0, false},
	}
	if got := sum(before); !reflect.DeepEqual(got, wantBefore) {
		t.Errorf("before Close:\n%+v\nwant\n%+v", got, wantBefore)
	}
	if got := sum(after); !reflect.DeepEqual(got, wantAfter) {
		t.Errorf("at Close:\n%+v\nwant\n%+v", got, wantAfter)
	}

	before, after = streamFrames(t, s, false)
	for _, f := range append(before, after...) {
		if f.Kind == flow.KindUDP {
			t.Errorf("without NoteUDP: %+v", f)
		}
	}
}

// TestStreamNoteUDPBounded: past 16384 associations at once, the least
// recently active ends early.
func TestStreamNoteUDPBounded(t *testing.T) {
	s := newSynth(t, linkEthernet)
	for i := 0; i <= maxUDPAssocs; i++ {
		s.now = t0 // all within the same instant: none is idle
		s.udp(fmt.Sprintf("10.0.%d.%d:4000", i>>8&0xff, i&0xff), "192.0.2.6:9999", []byte("x"))
	}
	before, after := streamFrames(t, s, true)
	if len(before) != 1 || before[0].Client != "10.0.0.0" || len(after) != maxUDPAssocs {
		first := "none"
		if len(before) > 0 {
			first = before[0].Client
		}
		t.Errorf("%d flows before Close (the first from %s), %d at Close; want 1 (from 10.0.0.0) and %d", len(before), first, len(after), maxUDPAssocs)
	}
}

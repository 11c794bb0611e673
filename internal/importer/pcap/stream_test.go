package pcap

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
					if fl.Kind != flow.KindTLS || fl.SNI == "" && fl.Host == "" {
						t.Errorf("open flow %+v: want a TLS connection named", fl)
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

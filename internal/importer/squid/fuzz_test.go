package squid

import (
	"bytes"
	"context"
	"io"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
)

// FuzzSquidLine feeds arbitrary text to Read and, with a custom logformat,
// to ReadLayout: no panic, every flow keyed by its line, start no later
// than end.
func FuzzSquidLine(f *testing.F) {
	layout, err := ParseLogformat(extensiveFormat + ` %ssl::>sni`)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("1157689312.049   5006 10.105.21.199 TCP_MISS/200 19763 CONNECT login.yahoo.com:443 badeyek DIRECT/175.16.199.115 -\n"))
	f.Add([]byte("1700000000.500    250 192.168.1.20 TCP_TUNNEL/200 6120 CONNECT login.microsoftonline.com:443 - HIER_DIRECT/20.190.160.1 - login.microsoftonline.com"))
	f.Add([]byte(`10.0.0.5 - alice [08/Sep/2006:06:21:52 +0200] "GET http://www.example.com/ HTTP/1.1" 200 1234 TCP_MISS:HIER_DIRECT`))
	f.Add([]byte(`10.0.0.5 - - [08/Sep/2006:04:21:52 +0000] "CONNECT evil.example:443 HTTP/1.1" 407 3000 "-" "curl/8.0" TCP_DENIED:HIER_NONE`))
	f.Add([]byte("1773416922.391    104 10.105.21.199 58938 TCP_MISS/200 904 123 364 123 528 GET http://example.com/ 1.1 badeyek HIER_DIRECT/203.0.113.10 80 text/html - - \"-\" \"curl/8.14.1\" \"example.com\" \"-\" 53 -"))
	f.Add([]byte("1.0 - [::1] TCP_MISS_ABORTED/000 - GET https://[2001:db8::2]:99999/a - HIER_DIRECT/- -\n\n#x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		for _, l := range []*Layout{nil, layout} {
			var flows []flow.Flow
			err := ReadLayout(context.Background(), bytes.NewReader(data), l, func(fl flow.Flow) error {
				if fl.Source != flow.SourceSquid {
					t.Errorf("flow of source %q: %+v", fl.Source, fl)
				}
				flows = append(flows, fl)
				return nil
			}, func(string, error) {})
			if err != nil {
				t.Errorf("ReadLayout(layout %v) of an in-memory reader failed: %v", l != nil, err)
			}
			importtest.Check(t, flows)
		}
		if !bytes.Equal(orig, data) {
			t.Error("Read modified its input")
		}
	})
}

// FuzzReadSizes reads the same text whole and in reads of a fuzzed size
// (down to one byte): the flows, skips, line numbers and error must not
// depend on where the reads end.
func FuzzReadSizes(f *testing.F) {
	f.Add([]byte("1157689312.049   5006 10.105.21.199 TCP_MISS/200 19763 CONNECT login.yahoo.com:443 badeyek DIRECT/175.16.199.115 -\ngarbage\n\n#c\r\n1.0 1 a TCP_HIT/200 1 GET http://b/ - NONE/- -"), uint16(1))
	f.Add([]byte("a\nb\r\n\n\n1.0 1 a TCP_HIT/200 1 GET http://b/ - NONE/- -\n"), uint16(7))
	f.Add([]byte("1.0 1 a TCP_HIT/200 1 GET http://b/ - NONE/- -\n1.0 1 a TCP_HIT/200 1 GET http://c/ - NONE/- -\n"), uint16(48))
	f.Fuzz(func(t *testing.T, data []byte, size uint16) {
		whole := readResult(t, bytes.NewReader(data))
		for _, r := range []io.Reader{
			sizedReader{bytes.NewReader(data), int(size%512) + 1},
			iotest.DataErrReader(sizedReader{bytes.NewReader(data), int(size%64) + 1}),
		} {
			got := readResult(t, r)
			if got.err != whole.err || !slices.Equal(got.flows, whole.flows) || !slices.Equal(got.skips, whole.skips) {
				t.Fatalf("reads of %d bytes:\n got %v\nwant %v", size, got, whole)
			}
		}
	})
}

// FuzzSplitFields checks splitFields, which reads lines without tabs
// eight bytes at a time, against splitFieldsSlow, the byte-by-byte
// reference, for every size of out.
func FuzzSplitFields(f *testing.F) {
	f.Add("1157689312.049   5006 10.105.21.199 TCP_MISS/200 19763 CONNECT login.yahoo.com:443 badeyek DIRECT/175.16.199.115 -")
	f.Add("  a  b\tc   ")
	f.Add("1 2 3 4 5 6 7 8 9 10 11 12  13  ")
	f.Add("abcdefghijklmnopq rstuvwxyzabcdefgh        ijklmnop qrstuvw ")
	f.Fuzz(func(t *testing.T, line string) {
		for size := 1; size <= 13; size++ {
			got := make([]string, size)
			want := make([]string, size)
			ng := splitFields(line, got)
			nw := splitFieldsSlow(line, want)
			if ng != nw || !slices.Equal(got, want) {
				t.Fatalf("splitFields(%q) into %d: %d %q, want %d %q", line, size, ng, got, nw, want)
			}
		}
	})
}

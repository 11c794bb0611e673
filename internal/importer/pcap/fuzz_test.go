package pcap

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
)

// FuzzRead feeds damaged captures to Read. It must not panic, must not
// allocate without bound, and every flow it emits must be well formed.
// Seeds: small synthetic captures of each link type and format, a real
// capture, and truncations of them; testdata/fuzz/FuzzRead holds inputs
// the fuzzer found.
func FuzzRead(f *testing.F) {
	hello := clientHelloBytes(f, "fuzz.example", "h2")
	for _, link := range []uint32{linkEthernet, linkSLL2, linkNull, linkRaw} {
		s := newSynth(f, link)
		c := s.dial("10.0.0.2:40000", "10.0.0.9:443")
		c.handshake()
		c.send(true, hello[:200])
		c.send(true, hello[200:])
		h := s.dial("[2001:db8::2]:40001", "[2001:db8::9]:80")
		h.handshake()
		h.send(true, []byte("GET / HTTP/1.1\r\nHost: h.example\r\nContent-Length: 2\r\n\r\nhi"))
		h.send(false, []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
		h.close()
		data := s.pcap(link == linkSLL2, link == linkNull)
		f.Add(data)
		f.Add(data[:len(data)-7])
		if link == linkEthernet {
			ng := s.pcapng()
			f.Add(ng)
			f.Add(ng[:len(ng)/2])
		}
	}
	if real, err := os.ReadFile("testdata/zeek_tls_tls13draft23-chrome67.0.3368.0-canary.pcap"); err == nil {
		f.Add(real)
		f.Add(real[:len(real)/3])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var flows []flow.Flow
		err := read(context.Background(), bytes.NewReader(data), func(fl flow.Flow, _ []int) error {
			if fl.Source != flow.SourcePcap {
				t.Fatalf("flow of source %q: %+v", fl.Source, fl)
			}
			flows = append(flows, fl)
			return nil
		}, func(where string, err error) {
			if where == "" || err == nil {
				t.Fatalf("skip(%q, %v)", where, err)
			}
		})
		_ = err
		importtest.Check(t, flows)
	})
}

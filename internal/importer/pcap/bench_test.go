package pcap

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// BenchmarkRead measures Read over real captures and over a synthetic one
// made of many short TLS and HTTP connections. bench/pcap/run.sh compares
// the reader with tshark on a large file.
func BenchmarkRead(b *testing.B) {
	inputs := []struct {
		name string
		data []byte
	}{
		{"wikipedia", loadCapture(b, "zeek_wikipedia.pcap")},
		{"windows-update", loadCapture(b, "zeek_http_vnd.ms-cab-compressed-multi-conn.pcap")},
		{"synthetic-2000-conns", syntheticMany(b, 2000)},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			flows := 0
			for b.Loop() {
				flows = 0
				err := Read(context.Background(), bytes.NewReader(in.data), func(flow.Flow) error {
					flows++
					return nil
				}, nil)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(flows), "flows/op")
		})
	}
}

// syntheticMany builds a capture of n connections, alternately TLS (a
// ClientHello split over two segments, then 8 KiB down) and HTTP (a
// request and a 4 KiB response).
func syntheticMany(b *testing.B, n int) []byte {
	hello := clientHelloBytes(b, "bench.example", "h2", "http/1.1")
	s := newSynth(b, linkEthernet)
	for i := range n {
		c := s.dial(fmt.Sprintf("10.%d.%d.2:%d", i>>8&0xff, i&0xff, 10000+i%50000), "192.0.2.10:443")
		c.handshake()
		if i%2 == 0 {
			c.send(true, hello[:300])
			c.send(true, hello[300:])
			for range 6 {
				c.send(false, make([]byte, 1400))
			}
		} else {
			c.send(true, []byte("GET /file HTTP/1.1\r\nHost: bench.example\r\n\r\n"))
			c.send(false, append([]byte("HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n"), make([]byte, 1300)...))
			c.send(false, make([]byte, 1400))
			c.send(false, make([]byte, 1396))
		}
		c.close()
	}
	return s.pcap(false, false)
}

package squid

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/pilotwire/pilotwire/internal/procstat"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// generateLog writes n native access.log lines in the shape of a busy proxy
// (tunnels, plain GETs, denials), for benchmarks.
func generateLog(n int) []byte {
	var b bytes.Buffer
	hosts := []string{"login.microsoftonline.com", "enterpriseregistration.windows.net", "ztd.dds.microsoft.com", "www.msftconnecttest.com", "dl.delivery.mp.microsoft.com"}
	for i := 0; i < n; i++ {
		ts := 1700000000 + i/1000
		h := hosts[i%len(hosts)]
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "%d.%03d %6d 10.1.%d.%d TCP_TUNNEL/200 %d CONNECT %s:443 - HIER_DIRECT/20.190.160.%d - %s\n", ts, i%1000, 50+i%900, i%4, i%250, 4000+i%9000, h, i%250, h)
		case 1:
			fmt.Fprintf(&b, "%d.%03d %6d 10.1.%d.%d TCP_MISS/200 %d GET http://%s/connecttest.txt?n=%d - HIER_DIRECT/20.190.160.%d text/plain\n", ts, i%1000, 10+i%90, i%4, i%250, 200+i%900, h, i, i%250)
		case 2:
			fmt.Fprintf(&b, "%d.%03d %6d 10.1.%d.%d TCP_DENIED/403 3900 CONNECT %s:443 - HIER_NONE/- text/html\n", ts, i%1000, i%3, i%4, i%250, h)
		default:
			fmt.Fprintf(&b, "%d.%03d %6d 10.1.%d.%d TCP_REFRESH_UNMODIFIED/304 310 GET http://%s/filestreamingservice/files/%d - HIER_DIRECT/20.190.160.%d -\n", ts, i%1000, 30+i%300, i%4, i%250, h, i, i%250)
		}
	}
	return b.Bytes()
}

// BenchmarkSquidParse measures Read (line splitting and parsing, no store)
// over a generated native log. lines/s is the figure the Squid reader is
// held to (≥ 2 million, see the README's import figures).
func BenchmarkSquidParse(b *testing.B) {
	const lines = 200_000
	data := generateLog(lines)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := procstat.Self()
	total := 0
	for b.Loop() {
		n := 0
		err := Read(context.Background(), bytes.NewReader(data), func(flow.Flow) error { n++; return nil }, func(w string, err error) { b.Fatalf("%s: %v", w, err) })
		if err != nil || n != lines {
			b.Fatalf("read %d lines, err %v", n, err)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "lines/s")
	if cpu := procstat.Self() - cpu0; cpu > 0 {
		// Work per CPU-second: Read parses on several goroutines, so on an
		// idle machine lines/s is higher than this.
		b.ReportMetric(float64(total)/cpu.Seconds(), "lines/cpu-s")
	}
}

// BenchmarkSquidProduce measures the reading goroutine alone: cutting the
// input into chunks of whole lines, with nothing parsed.
func BenchmarkSquidProduce(b *testing.B) {
	const lines = 200_000
	data := generateLog(lines)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	total := 0
	for b.Loop() {
		stop := make(chan struct{})
		order := make(chan *chunk, 8)
		work := make(chan *chunk, 8)
		free := make(chan *chunk, 16)
		go func() {
			defer close(order)
			defer close(work)
			produce(bytes.NewReader(data), stop, free, order, work)
		}()
		go func() {
			for range work {
			}
		}()
		next := 1
		for c := range order {
			if c.first != next {
				b.Fatalf("chunk starts at line %d, want %d", c.first, next)
			}
			next = c.next
			select {
			case free <- c:
			default:
			}
		}
		close(stop)
		if next != lines+1 {
			b.Fatalf("read %d lines, want %d", next-1, lines)
		}
		total += lines
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "lines/s")
}

package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkCheck150: 150 hosts on the stand-in internet, each connection
// 50 ms slower to open (DNS and TCP each wait 50 ms), checked with the
// default concurrency. The bar: 150 hosts in at most 10 s on a
// healthy network. One op is one whole check; see -benchtime 3x.
func BenchmarkCheck150(b *testing.B) {
	var targets []Target
	for i := range 150 {
		targets = append(targets, Target{Host: fmt.Sprintf("h%03d.bench.example", i), Port: 443, Scheme: "https",
			Service: "bench", ServiceName: "Bench", Phase: "other", System: true})
	}
	in := internet(b, targets)
	const latency = 50 * time.Millisecond
	o := simOptions(in)
	o.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
		time.Sleep(latency)
		return in.Resolve(ctx, host)
	}
	o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		time.Sleep(latency)
		return in.Dial(ctx, network, addr)
	}
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		rep := Summarise(Run(context.Background(), targets, o), o)
		if !rep.Ready {
			b.Fatal(rep.Headline())
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/150hosts")
	}
}

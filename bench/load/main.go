// Command load runs many simulated devices through one pilotwire proxy at
// once (the stand-in internet, a real SQLite store), each playing a
// built-in scenario again and again, and checks and prints: flows the
// devices made against flows stored (none may be lost), steps that did not
// end as their scenario expects, CPU per flow and peak RSS of the whole
// process (proxy, store, devices and stand-in servers together: an upper
// bound for the proxy), and how much longer than the scenario asks the
// exchanges took (p50, p99). Each device keeps at most 4 exchanges in
// flight: 500 devices then hold about 8,000 descriptors in this one process
// (device, proxy both ways, stand-in server), under the usual limit of
// 20,000 (ulimit -n).
//
//	go run ./bench/load                               # 500 devices for 2 minutes (and their last rounds)
//	go run ./bench/load -devices 1 -duration 30s      # one device, for comparison
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/scenario"
	"github.com/pilotwire/pilotwire/internal/sim"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

func main() {
	devices := flag.Int("devices", 500, "simulated devices at once")
	duration := flag.Duration("duration", 2*time.Minute, "how long the devices play (each plays its scenario again and again)")
	speed := flag.Float64("speed", 60, "scenario speed factor")
	name := flag.String("scenario", "user-driven", "built-in scenario")
	flag.Parse()
	if err := run(*devices, *duration, *speed, *name); err != nil {
		fmt.Fprintln(os.Stderr, "bench/load:", err)
		os.Exit(1)
	}
}

func run(devices int, d time.Duration, speed float64, name string) error {
	sc, err := scenario.Load(name, os.ReadFile)
	if err != nil {
		return err
	}
	in, err := sim.New()
	if err != nil {
		return err
	}
	defer in.Close()
	if err := scenario.Stage(in, sc); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pilotwire-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "load.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	rec := flow.NewRecorder(st, flow.RecorderOptions{})
	p := &proxy.Proxy{Resolve: in.Resolve, Dial: in.Dial, Record: rec.Record, MaxConns: 100000}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go p.Serve(ln)

	var steps, unexpected atomic.Int64
	var mu sync.Mutex
	var over []time.Duration
	cpu0, t0 := cpu(), time.Now()
	// Devices start no new round after d, and finish the one they are in:
	// a step cut off half way would count as lost without being so.
	deadline := time.Now().Add(d)
	ctxRun := ctx
	var wg sync.WaitGroup
	for i := range devices {
		addr := netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(1 + i%250)})
		wg.Go(func() {
			for round := 0; time.Now().Before(deadline); round++ {
				r := &scenario.Runner{Proxy: ln.Addr().String(), RootCAs: in.CertPool(), Speed: speed, BytesScale: 1.0 / 1024,
					Jitter: 0.2, Seed: uint64(i*1000 + round), LocalAddr: addr, MaxParallel: 4}
				recs, _ := r.Run(ctxRun, sc)
				var local []time.Duration
				for k := range recs {
					if recs[k].Start.IsZero() {
						continue // cut off by the end of the run before it began
					}
					steps.Add(1)
					if !recs[k].Expected(&sc.Steps[k]) {
						unexpected.Add(1)
					}
					want := time.Duration(float64(sc.Steps[k].Duration) / speed)
					local = append(local, recs[k].End.Sub(recs[k].Start)-want)
				}
				mu.Lock()
				over = append(over, local...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	p.Shutdown(sctx)
	if err := rec.Close(); err != nil {
		return err
	}
	used := cpu() - cpu0
	stored, err := st.CountFlows(ctx, flow.Filter{})
	if err != nil {
		return err
	}
	slices.Sort(over)
	q := func(f float64) time.Duration {
		if len(over) == 0 {
			return 0
		}
		return over[min(len(over)-1, int(f*float64(len(over))))]
	}
	fmt.Printf("%d devices playing %q at %gx for %s through one proxy (SQLite store, stand-in internet)\n", devices, sc.Name, speed, elapsed.Round(time.Second))
	fmt.Printf("  steps played %d, flows stored %d, lost %d\n", steps.Load(), stored, steps.Load()-stored)
	fmt.Printf("  steps that did not end as the scenario expects: %d\n", unexpected.Load())
	fmt.Printf("  flows a second: %.0f\n", float64(stored)/elapsed.Seconds())
	fmt.Printf("  CPU per flow (whole process: proxy, store, devices, servers): %.0f µs\n", float64(used.Microseconds())/float64(max(stored, 1)))
	fmt.Printf("  peak RSS (whole process): %.0f MiB\n", maxRSSMiB())
	fmt.Printf("  time beyond what the scenario asks, per exchange: p50 %s, p99 %s\n", q(0.5).Round(100*time.Microsecond), q(0.99).Round(100*time.Microsecond))
	return nil
}

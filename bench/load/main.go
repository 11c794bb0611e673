// Command load runs many simulated devices through one pilotwire proxy at
// once (the stand-in internet, a real SQLite store), each playing a
// built-in scenario again and again, and checks and prints: flows the
// devices made against flows stored (none may be lost), steps that did not
// end as their scenario expects, CPU per flow, peak RSS, and how long the
// exchanges took (p50, p99).
//
// Side by side in one run (unless -direct=false): first the same devices
// play the same scenario for the same time with no proxy, straight to the
// stand-in internet; then through the proxy. The differences are what the
// proxy adds: its CPU per flow (the devices' and servers' own CPU is in
// both and cancels out) and its latency per exchange (p50 and p99 of the
// proxied run minus those of the direct one). Each device keeps at most 4
// exchanges in flight: 500 devices then hold about 8,000 descriptors in
// this one process (device, proxy both ways, stand-in server), under the
// usual limit of 20,000 (ulimit -n).
//
//	go run ./bench/load                               # 500 devices, 2 minutes direct, then 2 through the proxy
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

	"github.com/pilotwire/pilotwire/internal/procstat"

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
	direct := flag.Bool("direct", true, "first play the same load with no proxy, to tell what the proxy adds")
	flag.Parse()
	if err := run(*devices, *duration, *speed, *name, *direct); err != nil {
		fmt.Fprintln(os.Stderr, "bench/load:", err)
		os.Exit(1)
	}
}

// played is what one run of the devices did.
type played struct {
	steps, unexpected int64
	took              []time.Duration // each exchange, end - start, sorted
	beyond            []time.Duration // each exchange's time beyond what the scenario asks, sorted
	cpu               time.Duration
	elapsed           time.Duration
}

func (p *played) q(list []time.Duration, f float64) time.Duration {
	if len(list) == 0 {
		return 0
	}
	return list[min(len(list)-1, int(f*float64(len(list))))]
}

// play runs the devices for d, each round after round with a Runner from
// runner, and finishes the rounds in progress.
// A step the scenario expects the proxy to refuse is not refused with no
// proxy: direct runs do not count it as unexpected.
func play(devices int, d time.Duration, speed float64, sc *scenario.Scenario, direct bool, runner func(i, round int) *scenario.Runner) *played {
	var steps, unexpected atomic.Int64
	var mu sync.Mutex
	var took, beyond []time.Duration
	cpu0, t0 := procstat.Self(), time.Now()
	// Devices start no new round after d, and finish the one they are in:
	// a step cut off half way would count as lost without being so.
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range devices {
		wg.Go(func() {
			for round := 0; time.Now().Before(deadline); round++ {
				recs, _ := runner(i, round).Run(context.Background(), sc)
				var lt, lb []time.Duration
				for k := range recs {
					if recs[k].Start.IsZero() {
						continue // cut off by the end of the run before it began
					}
					steps.Add(1)
					if !recs[k].Expected(&sc.Steps[k]) && !(direct && sc.Steps[k].Expect == scenario.ExpectRefused) {
						unexpected.Add(1)
					}
					want := time.Duration(float64(sc.Steps[k].Duration) / speed)
					lt = append(lt, recs[k].End.Sub(recs[k].Start))
					lb = append(lb, recs[k].End.Sub(recs[k].Start)-want)
				}
				mu.Lock()
				took, beyond = append(took, lt...), append(beyond, lb...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(took)
	slices.Sort(beyond)
	return &played{steps: steps.Load(), unexpected: unexpected.Load(), took: took, beyond: beyond, cpu: procstat.Self() - cpu0, elapsed: time.Since(t0)}
}

func deviceAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(1 + i%250)})
}

func run(devices int, d time.Duration, speed float64, name string, compare bool) error {
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
	newRunner := func(i, round int) *scenario.Runner {
		return &scenario.Runner{RootCAs: in.CertPool(), Speed: speed, BytesScale: 1.0 / 1024,
			Jitter: 0.2, Seed: uint64(i*1000 + round), LocalAddr: deviceAddr(i), MaxParallel: 4}
	}

	var direct *played
	var directRSS float64
	if compare {
		direct = play(devices, d, speed, sc, true, func(i, round int) *scenario.Runner {
			r := newRunner(i, round)
			r.Direct = func(ctx context.Context, host string, port int) (net.Conn, error) {
				addrs, err := in.Resolve(ctx, host)
				if err != nil {
					return nil, err
				}
				return in.Dial(ctx, "tcp", netip.AddrPortFrom(addrs[0], uint16(port)).String())
			}
			return r
		})
		directRSS = float64(procstat.SelfPeakRSS()) / (1 << 20)
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
	proxied := play(devices, d, speed, sc, false, func(i, round int) *scenario.Runner {
		r := newRunner(i, round)
		r.Proxy = ln.Addr().String()
		return r
	})
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	p.Shutdown(sctx)
	if err := rec.Close(); err != nil {
		return err
	}
	stored, err := st.CountFlows(ctx, flow.Filter{})
	if err != nil {
		return err
	}
	perStep := func(pl *played) float64 { return float64(pl.cpu.Microseconds()) / float64(max(pl.steps, 1)) }
	ms := func(t time.Duration) string { return t.Round(100 * time.Microsecond).String() }

	fmt.Printf("%d devices playing %q at %gx, %s each way (SQLite store, stand-in internet)\n", devices, sc.Name, speed, d)
	if direct != nil {
		fmt.Printf("direct, no proxy: %d steps in %s, %d not as the scenario expects; CPU %.0f µs a step; exchanges p50 %s, p99 %s; peak RSS %.0f MiB\n",
			direct.steps, direct.elapsed.Round(time.Second), direct.unexpected, perStep(direct), ms(direct.q(direct.took, 0.5)), ms(direct.q(direct.took, 0.99)), directRSS)
	}
	fmt.Printf("through the proxy: %d steps in %s, %d not as the scenario expects; CPU %.0f µs a step; exchanges p50 %s, p99 %s; peak RSS %.0f MiB\n",
		proxied.steps, proxied.elapsed.Round(time.Second), proxied.unexpected, perStep(proxied), ms(proxied.q(proxied.took, 0.5)), ms(proxied.q(proxied.took, 0.99)), float64(procstat.SelfPeakRSS())/(1<<20))
	fmt.Printf("  flows stored %d of %d, lost %d; %.0f flows a second\n", stored, proxied.steps, proxied.steps-stored, float64(stored)/proxied.elapsed.Seconds())
	fmt.Printf("  time beyond what the scenario asks, per exchange: p50 %s, p99 %s\n", ms(proxied.q(proxied.beyond, 0.5)), ms(proxied.q(proxied.beyond, 0.99)))
	if direct != nil {
		fmt.Printf("what the proxy adds: CPU %.0f µs per flow; latency per exchange p50 %s, p99 %s\n",
			perStep(proxied)-perStep(direct), ms(proxied.q(proxied.took, 0.5)-direct.q(direct.took, 0.5)), ms(proxied.q(proxied.took, 0.99)-direct.q(direct.took, 0.99)))
	}
	if proxied.steps != stored || proxied.unexpected > 0 || direct != nil && direct.unexpected > 0 {
		return fmt.Errorf("flows lost or steps not as expected")
	}
	return nil
}

// Command report measures pilotwire's report on a synthetic session: it
// makes N flows of one device (internal/timeline/synth), builds the
// timeline and renders the JSON report, and prints the time of each step,
// the CPU time and the peak memory.
//
//	go run ./bench/report                 # 1,000,000 flows, JSON to /dev/null
//	go run ./bench/report -n 200000 -format html -o /tmp/big.html
//	go run ./bench/report -store /tmp/1m.db   # also write the flows to an SQLite store,
//	                                          # to time `pilotwire --store /tmp/1m.db report`
//	go run ./bench/report -store /tmp/1mf.db -as-file   # the same, kept as an import is
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/timeline"
	"github.com/pilotwire/pilotwire/internal/timeline/synth"
)

func main() {
	n := flag.Int("n", 1_000_000, "flows in the session")
	span := flag.Duration("span", 4*time.Hour, "length of the session")
	format := flag.String("format", "json", "report format")
	out := flag.String("o", "", "write the report to this file (default: discard)")
	store := flag.String("store", "", "also write the flows to a new SQLite store at this path")
	asFile := flag.Bool("as-file", false, "write the store the way an import does (PutFileFlows), not as live rows")
	flag.Parse()
	if err := run(*n, *span, *format, *out, *store, *asFile); err != nil {
		fmt.Fprintln(os.Stderr, "bench/report:", err)
		os.Exit(1)
	}
}

func run(n int, span time.Duration, format, out, store string, asFile bool) error {
	cat := catalog.Default()
	t0 := time.Now()
	flows := synth.Flows(n, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), span)
	gen := time.Since(t0)
	cpu0 := cpuTime()

	t1 := time.Now()
	tl, err := timeline.Build(flows, cat, timeline.Options{})
	if err != nil {
		return err
	}
	build := time.Since(t1)

	var w io.Writer = io.Discard
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	t2 := time.Now()
	if err := report.Render(w, format, tl, report.Options{Generator: "bench/report"}); err != nil {
		return err
	}
	render := time.Since(t2)
	cpu := cpuTime() - cpu0

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("flows            %d (%d milestones, %d services, %d phases, %d attention items)\n", n,
		len(tl.Milestones), len(tl.Services), len(tl.Phases), len(tl.Attention))
	fmt.Printf("generate         %v (not part of the report)\n", gen.Round(time.Millisecond))
	fmt.Printf("build timeline   %v\n", build.Round(time.Millisecond))
	fmt.Printf("render %-9s %v\n", format, render.Round(time.Millisecond))
	fmt.Printf("report total     %v wall, %v CPU (user+sys)\n", (build + render).Round(time.Millisecond), cpu.Round(time.Millisecond))
	fmt.Printf("peak RSS         %s (whole process, flows included)\n", mib(peakRSS()))
	fmt.Printf("Go heap          %s in use, %s obtained from the OS\n", mib(int64(ms.HeapAlloc)), mib(int64(ms.HeapSys)))
	if store != "" {
		return writeStore(store, flows, asFile)
	}
	return nil
}

// writeStore puts the flows into a new SQLite store, in batches: as rows,
// or as the parts of one imported file.
func writeStore(path string, flows []flow.Flow, asFile bool) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists; give a new path", path)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	t := time.Now()
	for i := 0; i < len(flows); i += 10000 {
		batch := flows[i:min(i+10000, len(flows))]
		for j := range batch {
			batch[j].ID = 0
		}
		put := st.PutFlows
		if asFile {
			put = func(ctx context.Context, batch []flow.Flow) error {
				_, err := st.PutFileFlows(ctx, "benchreport00000", i/10000, batch)
				return err
			}
		}
		if err := put(ctx, batch); err != nil {
			st.Close()
			return err
		}
	}
	if asFile {
		// An import ends its file; one left open reads as interrupted.
		if _, err := st.EndFileFlows(ctx, "benchreport00000", (len(flows)+9999)/10000); err != nil {
			st.Close()
			return err
		}
	}
	fmt.Printf("store            %d flows written to %s in %v\n", len(flows), path, time.Since(t).Round(time.Millisecond))
	return st.Close()
}

func mib(b int64) string {
	if b < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

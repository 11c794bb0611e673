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
//
// With -postgres URL it also writes the same flows into that PostgreSQL
// database and then times the report from each store, alternating, by the
// code path of `pilotwire --store X report --format json` (the store opened
// read-only, session.FromStore, session.Find, session.Timeline,
// report.Render), and prints the ratio. bench/postgres/start.sh starts a
// throwaway cluster and prints a URL:
//
//	go run ./bench/report -postgres "$(bench/postgres/start.sh)" -reps 5
//	go run ./bench/report -postgres URL -store /tmp/1m.db -reuse   # time again, nothing written
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/pilotwire/pilotwire/internal/procstat"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/store/postgres"
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
	pg := flag.String("postgres", "", "also write the flows into the PostgreSQL database at `URL` (it must hold no flows),\n"+
		"then time the report from SQLite (-store, or a temporary file) and from PostgreSQL")
	reps := flag.Int("reps", 3, "with -postgres: reports timed from each store, alternating")
	reuse := flag.Bool("reuse", false, "with -postgres: the stores hold the flows already (an earlier run with the same -n,\n"+
		"-span, -as-file and -store): write nothing, only time the reports")
	cpuprofile := flag.String("cpuprofile", "", "with -postgres: write a CPU profile of the timed reports (both stores) to `FILE`")
	flag.Parse()
	if *reuse && (*pg == "" || *store == "") {
		fmt.Fprintln(os.Stderr, "bench/report: -reuse needs -postgres and -store")
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/report:", err)
			os.Exit(1)
		}
		defer f.Close()
		profile = f
	}
	if err := run(*n, *span, *format, *out, *store, *asFile, *pg, *reps, *reuse); err != nil {
		fmt.Fprintln(os.Stderr, "bench/report:", err)
		os.Exit(1)
	}
}

// profile receives the CPU profile of compare, when asked for.
var profile io.Writer

func run(n int, span time.Duration, format, out, store string, asFile bool, pg string, reps int, reuse bool) error {
	cat := catalog.Default()
	t0 := time.Now()
	flows := synth.Flows(n, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), span)
	gen := time.Since(t0)
	cpu0 := procstat.Self()

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
	cpu := procstat.Self() - cpu0

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("flows            %d (%d milestones, %d services, %d phases, %d attention items)\n", n,
		len(tl.Milestones), len(tl.Services), len(tl.Phases), len(tl.Attention))
	fmt.Printf("generate         %v (not part of the report)\n", gen.Round(time.Millisecond))
	fmt.Printf("build timeline   %v\n", build.Round(time.Millisecond))
	fmt.Printf("render %-9s %v\n", format, render.Round(time.Millisecond))
	fmt.Printf("report total     %v wall, %v CPU (user+sys)\n", (build + render).Round(time.Millisecond), cpu.Round(time.Millisecond))
	fmt.Printf("peak RSS         %s (whole process, flows included)\n", mib(procstat.SelfPeakRSS()))
	fmt.Printf("Go heap          %s in use, %s obtained from the OS\n", mib(int64(ms.HeapAlloc)), mib(int64(ms.HeapSys)))
	if pg == "" {
		if store != "" {
			return writeStore(store, flows, asFile)
		}
		return nil
	}
	if store == "" {
		dir, err := os.MkdirTemp("", "pwbench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		store = filepath.Join(dir, "1m.db")
	}
	if !reuse {
		if err := writeStore(store, flows, asFile); err != nil {
			return err
		}
		if err := writePostgres(pg, flows, asFile); err != nil {
			return err
		}
	}
	// The flows made here are dead from now on (the reports read the
	// stores), and compare collects them before each report.
	return compare(store, pg, format, reps)
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
	err = fill(ctx, st, path, flows, asFile)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

// writePostgres puts the flows into the PostgreSQL database at url, which
// must hold none yet, then refreshes its planner's statistics as `pilotwire
// import` and `store copy` do after a big write.
func writePostgres(url string, flows []flow.Flow, asFile bool) error {
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	if n, err := st.CountFlows(ctx, flow.Filter{}); err != nil {
		return err
	} else if n > 0 {
		return fmt.Errorf("%s holds %d flows already; give an empty database (createdb), or -reuse", st.Name(), n)
	}
	if err := fill(ctx, st, st.Name(), flows, asFile); err != nil {
		return err
	}
	t := time.Now()
	if err := st.Analyze(ctx); err != nil {
		return err
	}
	fmt.Printf("analyze          %v\n", time.Since(t).Round(time.Millisecond))
	return nil
}

// fill writes the flows into st in batches of 10,000.
func fill(ctx context.Context, st flow.Store, name string, flows []flow.Flow, asFile bool) error {
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
			return err
		}
	}
	if asFile {
		// An import ends its file; one left open reads as interrupted.
		if _, err := st.EndFileFlows(ctx, "benchreport00000", (len(flows)+9999)/10000); err != nil {
			return err
		}
	}
	d := time.Since(t)
	fmt.Printf("store            %d flows written to %s in %v (%.0f flows/s)\n", len(flows), name, d.Round(time.Millisecond),
		float64(len(flows))/d.Seconds())
	return nil
}

// compare times the report of the newest session from the SQLite store
// at path and from the PostgreSQL database at url, reps times each,
// alternating, and checks that both give the same report.
func compare(path, url, format string, reps int) error {
	ctx := context.Background()
	stores := []struct {
		name string
		open func() (flow.Store, error)
	}{
		{"sqlite", func() (flow.Store, error) { return sqlite.OpenReadOnly(ctx, path) }},
		{"postgres", func() (flow.Store, error) { return postgres.OpenReadOnly(ctx, url) }},
	}
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// The server's CPU, when it can be read: on a busy machine the time a
	// report takes says less than the CPU it costs.
	server := serverCPU(ctx, url)
	walls := make([][]time.Duration, len(stores))
	cpus := make([][]time.Duration, len(stores))
	sums := make([]string, len(stores))
	for r := range reps {
		for i, s := range stores {
			runtime.GC() // each report starts from the same heap
			var srv0 time.Duration
			if server != nil && s.name == "postgres" {
				srv0 = server()
			}
			cpu0 := procstat.Self()
			t := time.Now()
			sum, flows, err := reportFrom(ctx, s.open, format)
			if err != nil {
				return fmt.Errorf("report from %s: %w", s.name, err)
			}
			wall := time.Since(t)
			walls[i] = append(walls[i], wall)
			if r > 0 && sum != sums[i] {
				return fmt.Errorf("report from %s: run %d differs from run 1", s.name, r+1)
			}
			sums[i] = sum
			cpu := procstat.Self() - cpu0
			note := ""
			if server != nil && s.name == "postgres" {
				srv := server() - srv0
				note = fmt.Sprintf(" + %v CPU in the server", srv.Round(time.Millisecond))
				cpu += srv
			}
			cpus[i] = append(cpus[i], cpu)
			fmt.Printf("report from %-8s %v wall, %v CPU in this process%s (%d flows)\n", s.name, wall.Round(time.Millisecond),
				(procstat.Self() - cpu0).Round(time.Millisecond), note, flows)
		}
	}
	same := "the same report from both"
	if sums[0] != sums[1] {
		same = "the reports DIFFER"
	}
	for i, s := range stores {
		fmt.Printf("%-8s median %v, best %v of %d; CPU median %v\n", s.name, median(walls[i]).Round(time.Millisecond),
			slices.Min(walls[i]).Round(time.Millisecond), reps, median(cpus[i]).Round(time.Millisecond))
	}
	fmt.Printf("postgres / sqlite: %.2f (medians), %.2f (best); %s\n",
		median(walls[1]).Seconds()/median(walls[0]).Seconds(), slices.Min(walls[1]).Seconds()/slices.Min(walls[0]).Seconds(), same)
	if server != nil {
		fmt.Printf("CPU, postgres (both processes) / sqlite: %.2f (medians)\n", median(cpus[1]).Seconds()/median(cpus[0]).Seconds())
	} else {
		fmt.Println("(the server's CPU could not be read: not on this machine, or not readable by this user)")
	}
	if sums[0] != sums[1] {
		return errors.New("the two stores gave different reports")
	}
	return nil
}

// reportFrom makes the report `pilotwire --store X report --format F`
// makes, of the newest session, and returns its SHA-256 and the session's
// flows.
func reportFrom(ctx context.Context, open func() (flow.Store, error), format string) (string, int64, error) {
	st, err := open()
	if err != nil {
		return "", 0, err
	}
	// One name for both stores: the report names its source, and the two
	// must come out byte for byte the same.
	src := session.FromStore(st, "bench")
	defer src.Close()
	s, err := session.Find(ctx, src, timeline.DefaultGap, 0, session.Who{})
	if err != nil {
		return "", 0, err
	}
	if _, err := session.IncompleteNotes(ctx, src, []timeline.Session{s}); err != nil {
		return "", 0, err
	}
	t0, err := timeline.ParseT0("", s.Start)
	if err != nil {
		return "", 0, err
	}
	tl, err := session.Timeline(ctx, src, s, catalog.Default(), timeline.Options{T0: t0})
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	if err := report.Render(h, format, tl, report.Options{Generator: "bench/report", Source: src.Name()}); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), s.Flows, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) string {
	if b < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

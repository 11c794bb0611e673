package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

// BenchmarkPutFlows measures bulk writes of rows: batches of 5,000 new
// flows with realistic strings, into a store that grows from empty.
func BenchmarkPutFlows(b *testing.B) {
	benchPut(b, func(ctx context.Context, db *sqlite.DB, _ int, batch []flow.Flow) error {
		return db.PutFlows(ctx, batch)
	})
}

// BenchmarkPutFileFlows measures the same writes the way an import makes
// them: each batch one part of a file.
func BenchmarkPutFileFlows(b *testing.B) {
	benchPut(b, func(ctx context.Context, db *sqlite.DB, part int, batch []flow.Flow) error {
		_, err := db.PutFileFlows(ctx, "3f9a0c1d2e4b5a69", part, batch)
		return err
	})
}

func benchPut(b *testing.B, put func(ctx context.Context, db *sqlite.DB, part int, batch []flow.Flow) error) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "pw.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	batch := make([]flow.Flow, 5000)
	n, part := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i := range batch {
			n++
			batch[i] = flow.Flow{
				Key: fmt.Sprintf("3f9a0c1d2e4b5a69/line:%d", n), Start: base.Add(time.Duration(n) * time.Millisecond),
				End: base.Add(time.Duration(n)*time.Millisecond + 80*time.Millisecond), Client: "10.105.21.199",
				Source: flow.SourceSquid, SourceFile: "/var/log/squid/access.log", Kind: flow.KindHTTP, Method: "GET",
				Scheme: "http", Host: fmt.Sprintf("host%d.example.com", n%500), Port: 80,
				URL: fmt.Sprintf("http://host%d.example.com/path/to/resource/%d.js", n%500, n), Status: 200,
				BytesUp: 412, BytesDown: int64(1000 + n%9000), Decision: flow.DecisionAllowed,
			}
		}
		b.StartTimer()
		if err := put(ctx, db, part, batch); err != nil {
			b.Fatal(err)
		}
		part++
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "flows/s")
}

// readRows is how many flows BenchmarkFlowsRead streams: a large
// provisioning centre's session, the size the store's read figures in the
// README are given for.
const readRows = 1_000_000

// filled holds the stores of readRows flows shared by the read benchmarks
// (and -count repetitions), one kept as rows and one as the parts of a
// file: they take a while to build and reads do not change them.
var filled struct {
	once sync.Once
	dir  string
	err  error
}

// TestMain removes the shared stores.
func TestMain(m *testing.M) {
	code := m.Run()
	if filled.dir != "" {
		os.RemoveAll(filled.dir)
	}
	os.Exit(code)
}

// benchFlow is flow number n of a long capture: 4 clients, 500 hosts, a
// URL each, a zone that is not UTC.
func benchFlow(n int) flow.Flow {
	base := time.Date(2026, 11, 25, 9, 0, 0, 0, time.FixedZone("", 3600))
	start := base.Add(time.Duration(n) * time.Millisecond)
	return flow.Flow{
		Key: fmt.Sprintf("3f9a0c1d2e4b5a69/line:%d", n), Start: start, End: start.Add(80 * time.Millisecond),
		Client: fmt.Sprintf("10.0.0.%d", n%4), Source: flow.SourceSquid, SourceFile: "/var/log/squid/access.log",
		Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: fmt.Sprintf("host%d.example.com", n%500), Port: 80,
		URL: fmt.Sprintf("http://host%d.example.com/path/to/resource/%d.js", n%500, n), Status: 200,
		BytesUp: 412, BytesDown: int64(1000 + n%9000), Decision: flow.DecisionAllowed,
	}
}

// openFilled opens the shared store of readRows flows kept the given way
// ("rows" or "file"), building both the first time.
func openFilled(b *testing.B, kind string) *sqlite.DB {
	b.Helper()
	ctx := context.Background()
	filled.once.Do(func() {
		if filled.dir, filled.err = os.MkdirTemp("", "pwbench"); filled.err != nil {
			return
		}
		for _, kind := range []string{"rows", "file"} {
			db, err := sqlite.Open(ctx, filepath.Join(filled.dir, kind+".db"))
			if err != nil {
				filled.err = err
				return
			}
			batch := make([]flow.Flow, 0, 5000)
			for n := range readRows {
				batch = append(batch, benchFlow(n))
				if len(batch) == cap(batch) || n == readRows-1 {
					if kind == "rows" {
						filled.err = db.PutFlows(ctx, batch)
					} else {
						_, filled.err = db.PutFileFlows(ctx, "3f9a0c1d2e4b5a69", n/cap(batch), batch)
					}
					if filled.err != nil {
						db.Close()
						return
					}
					batch = batch[:0]
				}
			}
			db.Close()
		}
	})
	if filled.err != nil {
		b.Fatal(filled.err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(filled.dir, kind+".db"))
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkFlowsRead streams a million flows out of the store, as a report
// or the sessions listing does, from rows and from the parts of a file.
func BenchmarkFlowsRead(b *testing.B) {
	for _, kind := range []string{"rows", "file"} {
		b.Run(kind, func(b *testing.B) { benchRead(b, kind, flow.Filter{}) })
	}
}

// BenchmarkFlowsReadBrief streams a million flows with Filter.Brief, as the
// sessions listing can.
func BenchmarkFlowsReadBrief(b *testing.B) {
	for _, kind := range []string{"rows", "file"} {
		b.Run(kind, func(b *testing.B) { benchRead(b, kind, flow.Filter{Brief: true}) })
	}
}

func benchRead(b *testing.B, kind string, f flow.Filter) {
	db := openFilled(b, kind)
	defer db.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		var bytes int64
		if err := db.Flows(ctx, f, func(f flow.Flow) error {
			n++
			bytes += f.Bytes()
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if n != readRows {
			b.Fatalf("read %d flows, want %d", n, readRows)
		}
	}
	b.ReportMetric(float64(b.N*readRows)/b.Elapsed().Seconds(), "flows/s")
}

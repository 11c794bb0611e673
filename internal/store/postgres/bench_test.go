package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/postgres"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// The write benchmarks run the same batches into SQLite and into a
// PostgreSQL server on loopback (fsync off, as the tests' cluster is), so
// one run prints both: go test ./internal/store/postgres -run '^$' -bench . -benchtime 20x
//
//	Live: a proxy's batches of 2,000 flows, half of them tunnels opening and
//	half the tunnels of the batch before completing (rows replaced).
//	Import: parts of 5,000 flows of one file.

func stores(b *testing.B) map[string]func(b *testing.B) flow.Store {
	srv := testutil.StartPostgres(b)
	return map[string]func(b *testing.B) flow.Store{
		"sqlite": func(b *testing.B) flow.Store {
			db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "pw.db"))
			if err != nil {
				b.Fatal(err)
			}
			return db
		},
		"postgres": func(b *testing.B) flow.Store {
			db, err := postgres.Open(context.Background(), srv.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			return db
		},
	}
}

func benchFlow(n int, base time.Time) flow.Flow {
	return flow.Flow{
		Key: fmt.Sprintf("px-3f9a0c1d-%d", n), Start: base.Add(time.Duration(n) * time.Millisecond),
		Client: fmt.Sprintf("10.105.21.%d", n%200), Proxy: "site-a",
		Source: flow.SourceProxy, Kind: flow.KindConnect, Method: "CONNECT",
		Host: fmt.Sprintf("host%d.manage.microsoft.com", n%500), Port: 443, Status: 200, SNI: fmt.Sprintf("host%d.manage.microsoft.com", n%500),
		ALPN: "h2,http/1.1", TLSVersion: "1.3", BytesUp: 412, Decision: flow.DecisionAllowed,
	}
}

// BenchmarkLiveInserts: batches of 2,000 new live flows (no
// completions): the insert rate alone.
func BenchmarkLiveInserts(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		open := stores(b)[name]
		b.Run(name, func(b *testing.B) {
			st := open(b)
			defer st.Close()
			ctx := context.Background()
			base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			batch := make([]flow.Flow, 2000)
			n := 0
			for b.Loop() {
				b.StopTimer()
				for i := range batch {
					n++
					batch[i] = benchFlow(n, base)
					batch[i].End = batch[i].Start.Add(time.Second)
				}
				b.StartTimer()
				if err := st.PutFlows(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "flows/s")
		})
	}
}

func BenchmarkLiveFlows(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		open := stores(b)[name]
		b.Run(name, func(b *testing.B) {
			st := open(b)
			defer st.Close()
			ctx := context.Background()
			base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			n := 0
			var prev []flow.Flow
			batch := make([]flow.Flow, 0, 2000)
			for b.Loop() {
				b.StopTimer()
				batch = batch[:0]
				for _, f := range prev { // completed
					f.End, f.BytesDown, f.Reason = f.Start.Add(2*time.Second), 54321, "client closed"
					batch = append(batch, f)
				}
				prev = prev[:0]
				for len(batch) < cap(batch) {
					n++
					f := benchFlow(n, base)
					batch = append(batch, f)
					prev = append(prev, f)
				}
				b.StartTimer()
				if err := st.PutFlows(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*cap(batch))/b.Elapsed().Seconds(), "flows/s")
		})
	}
}

func BenchmarkImportFlows(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		open := stores(b)[name]
		b.Run(name, func(b *testing.B) {
			st := open(b)
			defer st.Close()
			ctx := context.Background()
			base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			batch := make([]flow.Flow, 5000)
			n, part := 0, 0
			for b.Loop() {
				b.StopTimer()
				for i := range batch {
					n++
					batch[i] = benchFlow(n, base)
					batch[i].Key, batch[i].Source, batch[i].SourceFile = fmt.Sprintf("3f9a0c1d2e4b5a69/line:%d", n), flow.SourceSquid, "access.log"
					batch[i].End = batch[i].Start.Add(80 * time.Millisecond)
				}
				b.StartTimer()
				if _, err := st.PutFileFlows(ctx, "3f9a0c1d2e4b5a69", part, batch); err != nil {
					b.Fatal(err)
				}
				part++
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "flows/s")
		})
	}
}

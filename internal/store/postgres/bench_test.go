package postgres_test

import (
	"github.com/pilotwire/pilotwire/internal/procstat"

	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/postgres"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// The write benchmarks run the same batches into SQLite and into
// PostgreSQL on loopback, so one run prints both and their ratio can be
// read off it:
//
//	go test ./internal/store/postgres -run '^$' -bench . -benchtime 50x
//
//	postgres          the tests' cluster: fsync and full-page writes off
//	postgres-durable  fsync and full-page writes on, as a real server
//
// Besides flows/s, each reports the CPU time per flow of this process
// (client-us/flow: for SQLite all of the work) and of the PostgreSQL
// server's processes (server-us/flow, autovacuum and checkpoints
// included), which vary much less than the rate when other work shares
// the machine.
//
//	LiveInserts  batches of 2,000 new live flows (the Recorder's MaxBatch)
//	LiveFlows    the same, half of each batch tunnels opening and half the
//	             tunnels of the batch before completing (rows replaced)
//	ImportFlows  parts of 5,000 flows of one imported file

// target is one store the benchmarks write into.
type target struct {
	name string
	open func(b *testing.B) flow.Store
	srv  *testutil.PostgresServer // nil for SQLite
}

func targets(b *testing.B) []target {
	fast, durable := testutil.StartPostgres(b), testutil.StartPostgresDurable(b)
	pg := func(srv *testutil.PostgresServer) func(b *testing.B) flow.Store {
		return func(b *testing.B) flow.Store {
			db, err := postgres.Open(context.Background(), srv.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			return db
		}
	}
	return []target{
		{name: "sqlite", open: func(b *testing.B) flow.Store {
			db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "pw.db"))
			if err != nil {
				b.Fatal(err)
			}
			return db
		}},
		{name: "postgres", open: pg(fast), srv: fast},
		{name: "postgres-durable", open: pg(durable), srv: durable},
	}
}

// benchWrites writes batches into each target, batch i (from 0) made by
// the i-th call of a batches() of its own and written by write, and
// reports flows/s and CPU per flow.
func benchWrites(b *testing.B, batches func() func() []flow.Flow, write func(ctx context.Context, st flow.Store, i int, batch []flow.Flow) error) {
	for _, tg := range targets(b) {
		b.Run(tg.name, func(b *testing.B) {
			st := tg.open(b)
			defer st.Close()
			ctx := context.Background()
			next := batches()
			var client, server time.Duration
			flows := 0
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				batch := next()
				flows += len(batch)
				// Each reading of the server's CPU costs this process some
				// (it walks /proc): outside the client's.
				s0 := serverCPU(tg.srv)
				c0 := procstat.CPU(os.Getpid())
				b.StartTimer()
				if err := write(ctx, st, i, batch); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				client += procstat.CPU(os.Getpid()) - c0
				server += serverCPU(tg.srv) - s0 // after the client's reading, for the same reason
				b.StartTimer()
			}
			b.ReportMetric(float64(flows)/b.Elapsed().Seconds(), "flows/s")
			b.ReportMetric(float64(client.Microseconds())/float64(flows), "client-us/flow")
			if tg.srv != nil {
				b.ReportMetric(float64(server.Microseconds())/float64(flows), "server-us/flow")
			}
		})
	}
}

func serverCPU(srv *testutil.PostgresServer) time.Duration {
	if srv == nil {
		return 0
	}
	return srv.CPUTime()
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

var benchBase = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// BenchmarkLiveInserts: batches of 2,000 new live flows (no
// completions): the insert rate alone.
func BenchmarkLiveInserts(b *testing.B) {
	benchWrites(b, func() func() []flow.Flow {
		n := 0
		batch := make([]flow.Flow, 2000)
		return func() []flow.Flow {
			for i := range batch {
				n++
				batch[i] = benchFlow(n, benchBase)
				batch[i].End = batch[i].Start.Add(time.Second)
			}
			return batch
		}
	}, putFlows)
}

func putFlows(ctx context.Context, st flow.Store, _ int, batch []flow.Flow) error {
	return st.PutFlows(ctx, batch)
}

// BenchmarkLiveFlows: a proxy's batches of 2,000, half of them tunnels
// opening and half the tunnels of the batch before completing.
func BenchmarkLiveFlows(b *testing.B) {
	benchWrites(b, func() func() []flow.Flow {
		n := 0
		var prev []flow.Flow
		batch := make([]flow.Flow, 0, 2000)
		return func() []flow.Flow {
			batch = batch[:0]
			for _, f := range prev { // completed
				f.End, f.BytesDown, f.Reason = f.Start.Add(2*time.Second), 54321, "client closed"
				batch = append(batch, f)
			}
			prev = prev[:0]
			for len(batch) < cap(batch) {
				n++
				f := benchFlow(n, benchBase)
				batch = append(batch, f)
				prev = append(prev, f)
			}
			return batch
		}
	}, putFlows)
}

// BenchmarkImportFlows: parts of 5,000 flows of one imported file.
func BenchmarkImportFlows(b *testing.B) {
	benchWrites(b, func() func() []flow.Flow {
		n := 0
		batch := make([]flow.Flow, 5000)
		return func() []flow.Flow {
			for i := range batch {
				n++
				batch[i] = benchFlow(n, benchBase)
				batch[i].Key, batch[i].Source, batch[i].SourceFile = fmt.Sprintf("3f9a0c1d2e4b5a69/line:%d", n), flow.SourceSquid, "access.log"
				batch[i].End = batch[i].Start.Add(80 * time.Millisecond)
			}
			return batch
		}
	}, func(ctx context.Context, st flow.Store, part int, batch []flow.Flow) error {
		_, err := st.PutFileFlows(ctx, "3f9a0c1d2e4b5a69", part, batch)
		return err
	})
}

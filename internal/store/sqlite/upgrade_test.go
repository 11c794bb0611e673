package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"

	_ "modernc.org/sqlite" // the database/sql driver, to write an old store as another program would
)

// TestUpgradeFromRows opens a store written before segments existed, where
// imports were rows keyed "<identity>/…": the upgrade keeps every flow and
// ID, new flows get greater IDs, and importing the same file again replaces
// its old rows instead of adding to them.
func TestUpgradeFromRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	schema, err := os.ReadFile("migrations/0001_flows.sql")
	if err != nil {
		t.Fatal(err)
	}
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		string(schema),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '2026-11-25T10:00:00Z')`,
		`INSERT INTO flows (id, key, start_ns, source, host) VALUES
			(1, 'a1b2c3d4e5f60718/line:1', 1000, 'squid', 'one.example'),
			(2, 'a1b2c3d4e5f60718/line:2', 2000, 'squid', 'two.example'),
			(5, 'tunnel-9', 1500, 'proxy', 'live.example'),
			(6, 'a1b2c3d4e5f607189/line:1', 3000, 'squid', 'other-file.example')`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.Close()

	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := func() map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		if err := db.Flows(ctx, flow.Filter{}, func(f flow.Flow) error { out[f.Host] = f.ID; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := ids(); len(got) != 4 || got["one.example"] != 1 || got["live.example"] != 5 || got["other-file.example"] != 6 {
		t.Fatalf("after the upgrade: %v", got)
	}

	again := []flow.Flow{
		{Key: "a1b2c3d4e5f60718/line:1", Start: time.Unix(0, 1000), Source: flow.SourceSquid, Host: "one.example"},
		{Key: "a1b2c3d4e5f60718/line:2", Start: time.Unix(0, 2000), Source: flow.SourceSquid, Host: "two.example"},
	}
	ch, err := db.PutFileFlows(ctx, "a1b2c3d4e5f60718", 0, again)
	if err != nil {
		t.Fatal(err)
	}
	// The two old rows are dropped and the part's two flows added: the
	// store does not match rows to segment flows.
	if ch != (flow.FileChange{Added: 2, Dropped: 2}) {
		t.Errorf("re-import over the old rows: %+v", ch)
	}
	if err := db.PutFlows(ctx, []flow.Flow{{Key: "tunnel-10", Start: time.Unix(0, 4000), Source: flow.SourceProxy, Host: "new.example"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.CountFlows(ctx, flow.Filter{}); err != nil || n != 5 {
		t.Fatalf("CountFlows = %d, %v; want 5 (the old rows of the file replaced)", n, err)
	}
	got := ids()
	// The file's rows became its segment (IDs 7 and 8, after every ID of
	// the old store); the live row and the other file's row stay.
	want := map[string]int64{"one.example": 7, "two.example": 8, "live.example": 5, "other-file.example": 6, "new.example": 9}
	if len(got) != len(want) {
		t.Fatalf("flows %v, want %v", got, want)
	}
	for h, id := range want {
		if got[h] != id {
			t.Errorf("%s: ID %d, want %d (all: %v)", h, got[h], id, got)
		}
	}
}

// TestReadOnlyBeforeIntercept reads a store of schema 5, written before
// migration 0006 (Flow.Tunnel, the pass-through list), without changing
// it: its flows have no tunnel and the list is empty; opened for writing,
// it is migrated and keeps both.
func TestReadOnlyBeforeIntercept(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v5.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	qs := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`}
	for v, name := range []string{"0001_flows", "0002_segments", "0003_imports", "0004_activity", "0005_problems"} {
		body, err := os.ReadFile("migrations/" + name + ".sql")
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, string(body), fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '2026-11-25T10:00:00Z')`, v+1))
		if v == 0 {
			// The flow as schema 1 wrote it; the later migrations carry
			// it (and the next ID) on as they do for a real store.
			qs = append(qs, `INSERT INTO flows (id, key, start_ns, source, kind, host) VALUES (1, 'px-1-1', 1000, 'proxy', 'connect', 'one.example')`)
		}
	}
	for _, q := range qs {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	old.Close()
	before, _ := os.ReadFile(path)

	ro, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var got []flow.Flow
	if err := ro.Flows(ctx, flow.Filter{}, func(f flow.Flow) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Host != "one.example" || got[0].Tunnel != "" {
		t.Fatalf("flows of schema 5: %+v", got)
	}
	if ps, err := ro.PassThroughs(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("pass-through list of schema 5: %v, %v", ps, err)
	}
	ro.Close()
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("the read-only open changed the file")
	}

	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PutFlows(ctx, []flow.Flow{{Key: "px-1-2", Start: time.Unix(0, 2000), Kind: flow.KindHTTP, Tunnel: "px-1-1"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.LearnPassThrough(ctx, flow.PassThrough{Host: "one.example", Reason: "r", Learned: time.Unix(5, 0)}); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	if err := db.Flows(ctx, flow.Filter{}, func(f flow.Flow) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Tunnel != "px-1-1" {
		t.Fatalf("after the upgrade: %+v", got)
	}
	if ps, err := db.PassThroughs(ctx); err != nil || len(ps) != 1 {
		t.Fatalf("pass-through list after the upgrade: %v, %v", ps, err)
	}
}

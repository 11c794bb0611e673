package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/postgres"
	"github.com/pilotwire/pilotwire/internal/store/storetest"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// TestConformance runs the flow.Store suite against a real PostgreSQL
// server, a new database for each store the suite opens.
func TestConformance(t *testing.T) {
	srv := testutil.StartPostgres(t)
	storetest.Run(t, func(t *testing.T) flow.Store {
		s, err := postgres.Open(context.Background(), srv.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestOpenTogether: proxies starting at once on a new database migrate it
// once between them (the advisory lock), and every one of them opens.
func TestOpenTogether(t *testing.T) {
	srv := testutil.StartPostgres(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(ctx, url)
			if err == nil {
				err = s.PutFlows(ctx, []flow.Flow{{Key: fmt.Sprintf("k%p", s), Start: time.Now()}})
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var rows, flows int
	if err := c.QueryRow(ctx, `SELECT count(*), (SELECT count(*) FROM flows) FROM pilotwire_schema`).Scan(&rows, &flows); err != nil {
		t.Fatal(err)
	}
	if rows != postgres.SchemaVersion || flows != 8 {
		t.Fatalf("%d migrations recorded (want %d), %d flows (want 8)", rows, postgres.SchemaVersion, flows)
	}
}

// TestNewerSchemaRefused: a database a newer pilotwire wrote is neither
// migrated nor read.
func TestNewerSchemaRefused(t *testing.T) {
	srv := testutil.StartPostgres(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `INSERT INTO pilotwire_schema (version) VALUES (999)`); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func(context.Context, string) (*postgres.DB, error){"Open": postgres.Open, "OpenReadOnly": postgres.OpenReadOnly} {
		_, err := open(ctx, url)
		var newer *postgres.NewerSchemaError
		if !errors.As(err, &newer) || newer.Schema != 999 || newer.Known != postgres.SchemaVersion {
			t.Errorf("%s: %v, want a NewerSchemaError of schema 999", name, err)
		}
	}
}

// TestReadOnly: a reader of a database with no store yet is told so and
// creates nothing; a read-only store refuses writes.
func TestReadOnly(t *testing.T) {
	srv := testutil.StartPostgres(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	if _, err := postgres.OpenReadOnly(ctx, url); !errors.Is(err, postgres.ErrNoStore) {
		t.Fatalf("OpenReadOnly of an empty database: %v, want ErrNoStore", err)
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var tables int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("a read-only open left %d tables (%v)", tables, err)
	}
	w, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.PutFlows(ctx, []flow.Flow{{Key: "a", Start: time.Now(), Host: "x"}}); err != nil {
		t.Fatal(err)
	}
	r, err := postgres.OpenReadOnly(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.CountFlows(ctx, flow.Filter{}); err != nil || n != 1 {
		t.Fatalf("read-only count: %d, %v", n, err)
	}
	if err := r.PutFlows(ctx, []flow.Flow{{Key: "b", Start: time.Now()}}); err == nil {
		t.Fatal("a read-only store wrote")
	}
}

// TestPasswordNeverPrinted: errors name the store without its password,
// whether the server is not there or the database is not.
func TestPasswordNeverPrinted(t *testing.T) {
	srv := testutil.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	good := srv.URL("postgres")
	withPW := strings.Replace(good, "pilotwire@", "pilotwire:Sup3rS3cret@", 1)
	for _, u := range []string{
		strings.Replace(withPW, "/postgres?", "/nosuchdb?", 1),
		"postgres://pilotwire:Sup3rS3cret@127.0.0.1:1/x?sslmode=disable",
		"postgres://pilotwire:Sup3rS3cret@127.0.0.1:1/x?sslmode=disable&connect_timeout=nonsense",
		"postgres://pilotwire:Sup3rS3cret@[::1/x",
	} {
		_, err := postgres.Open(ctx, u)
		if err == nil {
			t.Fatalf("Open(%s) worked", postgres.Redact(u))
		}
		if strings.Contains(err.Error(), "Sup3rS3cret") {
			t.Errorf("the password is in the error: %v", err)
		}
	}
	if got := postgres.Redact(withPW); strings.Contains(got, "Sup3rS3cret") || !strings.Contains(got, "pilotwire:xxxxx@") {
		t.Errorf("Redact = %s", got)
	}
}

// TestIDsInCommitOrder: several writers at once, and a reader that
// follows by ID (as the live page does) sees every flow exactly once.
func TestIDsInCommitOrder(t *testing.T) {
	srv := testutil.StartPostgres(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, srv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, batches, per = 4, 50, 40
	var wg sync.WaitGroup
	base := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				fs := make([]flow.Flow, per)
				for i := range fs {
					fs[i] = flow.Flow{Key: fmt.Sprintf("w%d-%d-%d", w, b, i), Start: base.Add(time.Duration(b*per+i) * time.Millisecond), Client: "10.0.0.1"}
				}
				if err := s.PutFlows(ctx, fs); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]int{}
	var after int64
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		var maxID int64
		if err := s.Flows(ctx, flow.Filter{AfterID: after}, func(f flow.Flow) error {
			seen[f.Key]++
			maxID = max(maxID, f.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		after = max(after, maxID)
		time.Sleep(5 * time.Millisecond)
	}
	if len(seen) != writers*batches*per {
		t.Fatalf("the follower saw %d flows, want %d", len(seen), writers*batches*per)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times", k, n)
		}
	}
}

// TestReadsBothFormats: a read gives every field back as it was written,
// strings that look like escapes or hold any rune included, whether the
// server sends rows in binary (the extended protocol, pgx's default) or
// as text (the simple protocol, which a connection pooler may need).
func TestReadsBothFormats(t *testing.T) {
	srv := testutil.StartPostgres(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	w, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Date(2026, 12, 5, 9, 0, 0, 123, time.FixedZone("", -5*3600))
	want := []flow.Flow{
		{Key: `k\x41`, Start: start, End: start.Add(time.Second), Client: "10.0.0.1", ClientPort: -1, Device: `LAB\VM`,
			Session: "s", Source: flow.SourceProxy, SourceFile: "f", Kind: flow.KindHTTP, Method: "GET", Scheme: "http",
			Host: "ü.example", Port: 8080, URL: `http://ü.example/a\\b?x='1'`, Status: 200, BytesUp: 1, BytesDown: 1 << 40,
			SNI: "s", ALPN: "h2", TLSVersion: "1.3", Error: "e", Decision: flow.DecisionAllowed, Reason: "r", Note: "n",
			Lost: 3, Tunnel: "t", Headers: "> A: b\n< C: \\x00", Proxy: "site-a",
			Bodies: flow.EncodeBodies(flow.Bodies{Request: []byte(`\x00'`), Response: []byte{0, 0xff, '\\'}})},
		{Key: "open", Start: start.Add(time.Minute).UTC()}, // no end, every string empty
	}
	if err := w.PutFlows(ctx, want); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"", "&default_query_exec_mode=simple_protocol"} {
		r, err := postgres.OpenReadOnly(ctx, url+mode)
		if err != nil {
			t.Fatal(err)
		}
		var got []flow.Flow
		if err := r.Flows(ctx, flow.Filter{Fields: flow.FieldsAll}, func(f flow.Flow) error { got = append(got, f); return nil }); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		r.Close()
		if len(got) != len(want) {
			t.Fatalf("%s: %d flows, want %d", mode, len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if !g.Start.Equal(w.Start) || !g.End.Equal(w.End) || g.Start.Format(time.RFC3339Nano) != w.Start.Format(time.RFC3339Nano) {
				t.Errorf("%s: flow %d: start %v end %v, want %v and %v", mode, i, g.Start, g.End, w.Start, w.End)
			}
			g.Start, g.End, w.Start, w.End = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if !flow.Same(g, w) {
				t.Errorf("%s: flow %d:\n got %+v\nwant %+v", mode, i, g, w)
			}
		}
	}
}

// TestStoredKeyAgain: a batch of keys this DB never wrote open is tried
// as new rows alone; when one is stored after all (by another process,
// or written complete and again), it replaces that row, keeping its ID,
// and the rest are added: never a second row, never a lost one.
func TestStoredKeyAgain(t *testing.T) {
	srv := testutil.StartPostgres(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	a, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	mk := func(key string, n int, down int64) flow.Flow {
		start := t0.Add(time.Duration(n) * time.Second)
		return flow.Flow{Key: key, Start: start, End: start.Add(time.Second), Client: "10.0.0.7", Source: flow.SourceProxy,
			Kind: flow.KindConnect, Host: "h.example", BytesDown: down}
	}
	if err := a.PutFlows(ctx, []flow.Flow{mk("k1", 1, 10), mk("k2", 2, 10)}); err != nil {
		t.Fatal(err)
	}
	// b never wrote k1; a wrote k2 complete, so it too is tried as new.
	if err := b.PutFlows(ctx, []flow.Flow{mk("k3", 3, 10), mk("k1", 1, 100)}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutFlows(ctx, []flow.Flow{mk("k2", 2, 200), mk("k4", 4, 10)}); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := a.Flows(ctx, flow.Filter{}, func(f flow.Flow) error {
		got = append(got, fmt.Sprintf("%d %s %d", f.ID, f.Key, f.BytesDown))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"1 k1 100", "2 k2 200", "3 k3 10", "4 k4 10"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("flows: %q, want %q", got, want)
	}
	var flows, bytes int64
	if err := a.Activity(ctx, flow.Filter{}, func(act flow.Activity) error {
		flows += act.Flows
		bytes += act.Bytes
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if flows != 4 || bytes != 320 {
		t.Errorf("activity: %d flows, %d bytes; want 4 and 320", flows, bytes)
	}
}

// TestImportRowsBeforeSegments: a part an older pilotwire imported as
// rows (file and part set, before migration 0007) is read with the
// segments, and imported again it is replaced by a segment: never both.
func TestImportRowsBeforeSegments(t *testing.T) {
	srv := testutil.StartPostgres(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC).UnixNano()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO flows (id, key, file, part, start_ns, client, source, kind, host) VALUES
			(1, 'f1/line:1', 'f1', 0, %d, '10.0.0.7', 'squid', 'connect', 'old.example'),
			(2, 'f1/line:2', 'f1', 0, %d, '10.0.0.7', 'squid', 'connect', 'old.example')`, t0, t0+1),
		`UPDATE counters SET value = 3 WHERE name = 'next_flow_id'`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	hosts := func() []string {
		var out []string
		if err := s.Flows(ctx, flow.Filter{}, func(f flow.Flow) error { out = append(out, f.Host); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := hosts(); len(got) != 2 {
		t.Fatalf("rows of the old import read as %q", got)
	}
	var again []flow.Flow
	for i := range 3 {
		again = append(again, flow.Flow{Key: fmt.Sprintf("f1/line:%d", i+1), Start: time.Unix(0, t0+int64(i)), Client: "10.0.0.7",
			Source: flow.SourceSquid, Kind: flow.KindConnect, Host: "new.example"})
	}
	ch, err := s.PutFileFlows(ctx, "f1", 0, again)
	if err != nil {
		t.Fatal(err)
	}
	if got := hosts(); ch.Added != 1 || strings.Join(got, ",") != "new.example,new.example,new.example" {
		t.Errorf("imported again: %+v, flows %q", ch, got)
	}
	var flows int64
	if err := s.Activity(ctx, flow.Filter{}, func(a flow.Activity) error { flows += a.Flows; return nil }); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountFlows(ctx, flow.Filter{}); err != nil || n != 3 || flows != 3 {
		t.Errorf("count %d (%v), activity %d flows; want 3 and 3", n, err, flows)
	}
}

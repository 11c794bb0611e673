package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/testutil"

	_ "modernc.org/sqlite" // database/sql's driver, to write files as another program would
)

// storeFixture is a file (or no file) at --store, and what a command that
// only reads a store must answer for it. want and wantErr use PATH for the
// store's path.
type storeFixture struct {
	name string
	make func(t *testing.T, path string)
	// readOK: readers succeed and print flowHost; otherwise readErr is
	// the whole of stderr.
	readOK  bool
	readErr string
}

// The flows of a healthy store, and of the older ones.
const flowHost = "ztd.dds.microsoft.com"

func healthyStore(t *testing.T, path string) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var flows []flow.Flow
	for i := range 3 {
		at := t0.Add(time.Duration(i) * time.Minute)
		flows = append(flows, flow.Flow{Key: fmt.Sprint("k", i), Start: at, End: at.Add(time.Second), Client: "10.0.0.23",
			Source: flow.SourceProxy, Kind: flow.KindConnect, Method: "CONNECT", Host: flowHost, Port: 443, Status: 200, BytesDown: 5000})
	}
	if err := st.PutFlows(t.Context(), flows); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// sqlExec runs statements on the SQLite file at path, as another program
// would (no pilotwire code).
func sqlExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// olderStore writes a store of schema 1 (flows as rows, before segments),
// as the first pilotwire did.
func olderStore(t *testing.T, path string) {
	t.Helper()
	schema, err := os.ReadFile("../../internal/store/sqlite/migrations/0001_flows.sql")
	if err != nil {
		t.Fatal(err)
	}
	sqlExec(t, path, string(schema),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '2026-11-25T10:00:00Z')`,
		`INSERT INTO flows (id, key, start_ns, client, source, kind, method, host, port, status) VALUES
			(1, 'k1', 1795000000000000000, '10.0.0.23', 'proxy', 'connect', 'CONNECT', '`+flowHost+`', 443, 200)`)
}

func storeFixtures() []storeFixture {
	return []storeFixture{
		{name: "missing", make: func(*testing.T, string) {},
			readErr: "no pilotwire store at PATH — capture with `pilotwire proxy` or `pilotwire import` first"},
		{name: "empty", make: func(t *testing.T, p string) { writeFile(t, p, "") },
			readErr: "PATH is not a pilotwire store (the file is empty)"},
		{name: "text", make: func(t *testing.T, p string) {
			writeFile(t, p, "1700000000.000 5 10.1.0.1 TCP_MISS/200 200 GET http://x/ - - -\n")
		},
			readErr: "PATH is not a pilotwire store (not an SQLite database)"},
		{name: "foreign", make: func(t *testing.T, p string) {
			sqlExec(t, p, `CREATE TABLE notes (body TEXT)`, `CREATE TABLE tags (name TEXT)`, `INSERT INTO notes VALUES ('mine')`)
		}, readErr: "PATH is not a pilotwire store (an SQLite database without pilotwire's tables; it holds notes, tags)"},
		{name: "older", make: olderStore, readOK: true},
		{name: "newer", make: func(t *testing.T, p string) {
			healthyStore(t, p)
			sqlExec(t, p, fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '2030-01-01T00:00:00Z')`, sqlite.SchemaVersion+1))
		}, readErr: fmt.Sprintf("PATH was written by a newer pilotwire (schema %d; this one knows up to %d)", sqlite.SchemaVersion+1, sqlite.SchemaVersion)},
		{name: "healthy", make: healthyStore, readOK: true},
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dirState is every file of a directory with its size, mtime and checksum.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range es {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		lines = append(lines, fmt.Sprintf("%s %d %s %s", e.Name(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano), hex.EncodeToString(sum[:8])))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// settle makes the files of dir a day old, so that a write now, however
// small, shows in the mtime.
func settle(t *testing.T, dir string) {
	t.Helper()
	old := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if err := os.Chtimes(filepath.Join(dir, e.Name()), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadersNeverWrite runs every command that only reads a store over
// each kind of file at --store: the exit status, the message, and the
// directory (names, sizes, mtimes, checksums) before and after.
func TestReadersNeverWrite(t *testing.T) {
	readers := [][]string{{"flows"}, {"sessions"}, {"report"}, {"endpoints", "observed"}}
	for _, fx := range storeFixtures() {
		for _, cmd := range readers {
			t.Run(fx.name+"/"+strings.Join(cmd, "_"), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "pilotwire.db")
				fx.make(t, path)
				settle(t, dir)
				before := dirState(t, dir)
				out, errs, code := pw(t, append([]string{"--store", path}, cmd...)...)
				if fx.readOK {
					if code != 0 || !strings.Contains(out, flowHost) && !strings.Contains(out, "10.0.0.23") {
						t.Errorf("exit %d, stdout %q, stderr %q; want 0 and the store's flows", code, out, errs)
					}
				} else {
					want := "pilotwire: " + strings.ReplaceAll(fx.readErr, "PATH", path) + "\n"
					if code != 1 || errs != want || out != "" {
						t.Errorf("exit %d, stdout %q, stderr %q\nwant exit 1 and stderr %q", code, out, errs, want)
					}
				}
				if after := dirState(t, dir); after != before {
					t.Errorf("the directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			})
		}
	}
}

// TestWritersRefuse: import and proxy create and migrate stores, but not
// out of a file that is not one, nor a store of a newer pilotwire, nor in a
// directory that does not exist; the file is left as it was.
func TestWritersRefuse(t *testing.T) {
	log := filepath.Join(t.TempDir(), "access.log")
	writeSquidLog(t, log, 10)
	writers := map[string][]string{
		"import": {"import", log},
		"proxy":  {"proxy", "--listen", "127.0.0.1:0", "--ui", ""},
	}
	cases := []struct {
		name string
		make func(t *testing.T, path string)
		want string // the whole of stderr; PATH and DIR for the store's
	}{
		{"newer", func(t *testing.T, p string) {
			healthyStore(t, p)
			sqlExec(t, p, fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '2030-01-01T00:00:00Z')`, sqlite.SchemaVersion+1))
		}, fmt.Sprintf("PATH was written by a newer pilotwire (schema %d; this one knows up to %d)", sqlite.SchemaVersion+1, sqlite.SchemaVersion)},
		{"foreign", func(t *testing.T, p string) { sqlExec(t, p, `CREATE TABLE notes (body TEXT)`) },
			"PATH is not a pilotwire store (an SQLite database without pilotwire's tables; it holds notes)"},
		{"text", func(t *testing.T, p string) { writeFile(t, p, "not a database\n") },
			"PATH is not a pilotwire store (not an SQLite database)"},
		{"missing-dir", nil, "create store PATH: directory DIR does not exist"},
	}
	for _, c := range cases {
		for name, args := range writers {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "pilotwire.db")
				if c.make == nil {
					path = filepath.Join(dir, "no-such-dir", "pilotwire.db")
				} else {
					c.make(t, path)
				}
				settle(t, dir)
				before := dirState(t, dir)
				// A proxy that accepted the store would serve until the
				// context ends.
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				var out, errb bytes.Buffer
				err := run(ctx, append([]string{"--store", path}, args...), &out, &errb)
				code := exitCode(err, &errb)
				want := "pilotwire: " + strings.NewReplacer("PATH", path, "DIR", filepath.Dir(path)).Replace(c.want) + "\n"
				if code != 1 || errb.String() != want {
					t.Errorf("exit %d, stderr %q\nwant exit 1 and stderr %q", code, errb.String(), want)
				}
				if after := dirState(t, dir); after != before {
					t.Errorf("the directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			})
		}
	}
}

// walModeStore is a healthy store left in WAL mode without a -wal file, as
// an older pilotwire left every store (and as a copy of a store taken while
// a proxy ran may be): SQLite reads such a file through -wal and -shm files
// it creates, unless told that nothing can change it.
func walModeStore(t *testing.T, path string) {
	t.Helper()
	healthyStore(t, path)
	sqlExec(t, path, `PRAGMA journal_mode=WAL`)
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatal("the fixture left a -wal file")
	}
}

// runTool runs a command line (program name first) and fails the
// test, or skips it (testutil.Missing) when the outside program cannot do
// it here.
func runTool(t *testing.T, args ...string) {
	t.Helper()
	testutil.LookPath(t, args[0])
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		testutil.Missing(t, fmt.Sprintf("%s: %v: %s (it needs root and a file system that supports it)", strings.Join(args, " "), err, out))
	}
}

// TestReadEvidenceCopy reads stores that nothing can write: in a read-only
// mount (a customer's copy on a mounted share) and an immutable file
// (chattr +i: root's write permission does not override it, as a 0444
// mode does). Each reader answers as for a writable store and leaves no
// file behind.
func TestReadEvidenceCopy(t *testing.T) {
	readers := [][]string{{"flows"}, {"sessions"}, {"report"}, {"endpoints", "observed"}}
	type place struct {
		name string
		// prepare makes the store at src (in srcDir) unwritable and
		// returns the path to read it at.
		prepare func(t *testing.T, srcDir, src string) string
	}
	places := []place{
		{"read-only-mount", func(t *testing.T, srcDir, src string) string {
			mnt := t.TempDir()
			runTool(t, "mount", "--bind", srcDir, mnt)
			t.Cleanup(func() { exec.Command("umount", mnt).Run() })
			runTool(t, "mount", "-o", "remount,ro,bind", mnt)
			return filepath.Join(mnt, filepath.Base(src))
		}},
		{"immutable-file", func(t *testing.T, _, src string) string {
			runTool(t, "chattr", "+i", src)
			t.Cleanup(func() { exec.Command("chattr", "-i", src).Run() })
			return src
		}},
	}
	fixtures := []struct {
		name string
		make func(t *testing.T, path string)
	}{{"rollback-journal", healthyStore}, {"wal-mode", walModeStore}}
	for _, pl := range places {
		for _, fx := range fixtures {
			t.Run(pl.name+"/"+fx.name, func(t *testing.T) {
				srcDir := t.TempDir()
				src := filepath.Join(srcDir, "pilotwire.db")
				fx.make(t, src)
				settle(t, srcDir)
				before := dirState(t, srcDir)
				path := pl.prepare(t, srcDir, src)
				for _, cmd := range readers {
					out, errs, code := pw(t, append([]string{"--store", path}, cmd...)...)
					if code != 0 || !strings.Contains(out, flowHost) && !strings.Contains(out, "10.0.0.23") {
						t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0 and the store's flows", cmd, code, out, errs)
					}
				}
				if after := dirState(t, srcDir); after != before {
					t.Errorf("the directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			})
		}
	}
}

// TestConcurrentImportsCountOnce imports one file twice at once into one
// store: the store holds its flows once, and the two "N new" figures add
// up to that, not to twice it.
func TestConcurrentImportsCountOnce(t *testing.T) {
	dir := t.TempDir()
	log, store := filepath.Join(dir, "access.log"), filepath.Join(dir, "pilotwire.db")
	const lines = 20000
	writeSquidLog(t, log, lines)
	newRe := regexp.MustCompile(`, (\d+) flows \((\d+) new\)`)
	outs := make([]string, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() {
			out, errs, code := pw(t, "--store", store, "import", "--batch", "500", log)
			if code != 0 {
				t.Errorf("import %d: exit %d: %s", i, code, errs)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	total := 0
	for i, out := range outs {
		m := newRe.FindStringSubmatch(out)
		if m == nil || m[1] != fmt.Sprint(lines) {
			t.Fatalf("import %d printed %q", i, out)
		}
		n, _ := strconv.Atoi(m[2])
		total += n
	}
	if n := len(storeFlows(t, store, flow.Filter{})); n != lines || total != lines {
		t.Errorf("the store holds %d flows; the imports said %d new between them (%q); want %d each", n, total, outs, lines)
	}
	// Once more: nothing new.
	out, _, _ := pw(t, "--store", store, "import", log)
	if m := newRe.FindStringSubmatch(out); m == nil || m[2] != "0" {
		t.Errorf("a third import printed %q, want 0 new", out)
	}
}

// TestReadWhileWriting: flows and sessions run over and over beside a
// writer storing batches as fast as it can (a busy proxy's recorder):
// no reader fails (no "database is locked"), no write fails or waits as
// long as the busy timeout, and every flow is stored.
func TestReadWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pilotwire.db")
	healthyStore(t, path)
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const batches, per = 150, 200
	done := make(chan struct{})
	var slowest time.Duration
	go func() {
		defer close(done)
		t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		for b := range batches {
			fs := make([]flow.Flow, per)
			for i := range fs {
				at := t0.Add(time.Duration(b*per+i) * time.Millisecond)
				fs[i] = flow.Flow{Key: fmt.Sprint("w", b, ".", i), Start: at, End: at.Add(time.Millisecond), Client: "10.0.0.50",
					Source: flow.SourceProxy, Kind: flow.KindConnect, Host: "live.example", Port: 443}
			}
			start := time.Now()
			if err := st.PutFlows(t.Context(), fs); err != nil {
				t.Errorf("batch %d: %v", b, err)
				return
			}
			slowest = max(slowest, time.Since(start))
		}
	}()
	reads := 0
	for running := true; running && reads < 1000; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		cmd := []string{"flows", "--newest", "--limit", "20"}
		if reads%2 == 1 {
			cmd = []string{"sessions"}
		}
		if _, errs, code := pw(t, append([]string{"--store", path}, cmd...)...); code != 0 {
			t.Fatalf("read %d (%s) beside the writer: exit %d: %s", reads, cmd[0], code, errs)
		}
	}
	<-done
	n, err := st.CountFlows(t.Context(), flow.Filter{Client: "10.0.0.50"})
	if err != nil || n != batches*per {
		t.Errorf("%d flows stored (%v), want %d", n, err, batches*per)
	}
	// The busy timeout is 10 s: a write that waited for readers that long
	// would be a write blocked by them.
	if slowest >= 10*time.Second {
		t.Errorf("a batch took %s", slowest)
	}
	t.Logf("%d reads beside %d batches of %d flows; slowest batch %s", reads, batches, per, slowest)
}

// TestInterruptedImport kills an import (kill -9) half way: its session
// says so in sessions and report, and importing the file again completes
// it, without duplicates, and the note goes.
func TestInterruptedImport(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("kill -9 is a Unix signal")
	}
	bin := proxyBinary(t)
	dir := t.TempDir()
	log, store := filepath.Join(dir, "access.log"), filepath.Join(dir, "pilotwire.db")
	const lines = 300_000
	writeSquidLog(t, log, lines)
	healthyStore(t, store) // another session, which stays complete

	cmd := exec.Command(bin, "--store", store, "import", "--batch", "1000", log)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		st, err := sqlite.OpenReadOnly(t.Context(), store)
		if err != nil {
			continue // the import holds the lock while it turns on WAL
		}
		u, err := st.UnfinishedImports(t.Context())
		st.Close()
		if err == nil && len(u) == 1 && u[0].Flows > 0 {
			cmd.Process.Kill()
			killed = true
			break
		}
	}
	err := cmd.Wait()
	if !killed {
		t.Fatalf("the import ended (%v) before it could be killed half way", err)
	}

	st, err := sqlite.OpenReadOnly(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.UnfinishedImports(t.Context())
	st.Close()
	if err != nil || len(u) != 1 || u[0].Flows <= 0 || u[0].Flows >= lines || u[0].SourceFile != log {
		t.Fatalf("after kill -9: unfinished imports %+v, %v; want the log's, with some of its flows", u, err)
	}
	stored := int64(len(storeFlows(t, store, flow.Filter{Source: flow.SourceSquid})))
	if stored != u[0].Flows {
		t.Errorf("the store holds %d of the log's flows; the unfinished import says %d", stored, u[0].Flows)
	}
	note := fmt.Sprintf("incomplete: import interrupted after %d flows", stored)
	out, errs, code := pw(t, "--store", store, "sessions")
	if code != 0 {
		t.Fatalf("sessions: exit %d: %s", code, errs)
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")[1:]
	noted := 0
	for _, r := range rows {
		switch {
		case strings.Contains(r, "10.0.0.23"):
			if strings.Contains(r, "incomplete") {
				t.Errorf("the other session is noted: %q", r)
			}
		case strings.HasSuffix(r, "  "+note):
			noted++
		default:
			t.Errorf("session of the killed import without its note %q: %q", note, r)
		}
	}
	if noted == 0 {
		t.Errorf("no session says %q:\n%s", note, out)
	}
	_, errs, code = pw(t, "--store", store, "report", "--client", "10.1.0.7")
	if code != 0 || !strings.Contains(errs, ": "+note+"\n") {
		t.Errorf("report: exit %d, stderr %q; want the note %q", code, errs, note)
	}

	// The same import again completes it.
	out, errs, code = pw(t, "--store", store, "import", "--batch", "1000", log)
	if code != 0 {
		t.Fatalf("import again: exit %d: %s", code, errs)
	}
	if want := fmt.Sprintf("(%d new)", lines-stored); !strings.Contains(out, want) {
		t.Errorf("import again printed %q, want %q", out, want)
	}
	if n := len(storeFlows(t, store, flow.Filter{Source: flow.SourceSquid})); n != lines {
		t.Errorf("after the import again: %d flows, want %d", n, lines)
	}
	out, _, _ = pw(t, "--store", store, "sessions")
	if strings.Contains(out, "incomplete") {
		t.Errorf("sessions after the import completed:\n%s", out)
	}
}

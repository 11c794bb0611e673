// Package sqlite implements flow.Store on an SQLite file, through the pure-Go
// modernc.org/sqlite driver, so pilotwire needs no cgo. The database runs in
// WAL mode with synchronous=NORMAL: a committed batch survives a crash of
// the process. The schema comes from embedded, numbered migrations.
//
// Live flows (PutFlows) are one row each in the flows table, upserted by
// Key. Imported files (PutFileFlows) are kept as segments, one row per part
// of a file holding its flows encoded together (package segment): a row per flow
// capped an import near 100,000 flows/s, a segment per 5,000 flows writes
// over 700,000/s and reads back five times faster. Every read merges both in
// start order (read.go). Flow IDs come from one counter, so a flow written
// later has a greater ID whichever way it is kept.
//
// Every connection bypasses database/sql and calls SQLite's C API as
// modernc compiles it to Go (see rawConn in raw.go).
//
// Open is for writers (proxy, import): it creates and migrates. Commands
// that only read use OpenReadOnly, which never changes the file (see
// there).
package sqlite

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/schema"

	lib "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// allMigrations are the embedded migrations, oldest first.
var allMigrations = schema.MustLoad("sqlite", migrations, "migrations")

// SchemaVersion is the newest schema this build knows: the number of its
// last migration. A store whose schema is newer was written by a newer
// pilotwire; this one neither reads nor writes it.
var SchemaVersion = allMigrations[len(allMigrations)-1].Version

// ErrNoStore is returned (wrapped) by OpenReadOnly when there is no file
// at the path.
var ErrNoStore = errors.New("no store")

// NotStoreError says that a file is not a pilotwire store, and why.
type NotStoreError struct {
	Path string
	Why  string // e.g. "the file is empty", "not an SQLite database"
}

func (e *NotStoreError) Error() string {
	return fmt.Sprintf("%s is not a pilotwire store (%s)", e.Path, e.Why)
}

// NewerSchemaError says that a store was written by a newer pilotwire,
// whose schema this build does not know.
type NewerSchemaError struct {
	Path   string
	Schema int // the store's
	Known  int // the newest this build knows (SchemaVersion)
}

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("%s was written by a newer pilotwire (schema %d; this one knows up to %d)", e.Path, e.Schema, e.Known)
}

// DB is a flow.Store on one SQLite file.
type DB struct {
	path string
	// readOnly DBs come from OpenReadOnly; immutable says SQLite was told
	// that nothing changes the file (see OpenReadOnly).
	readOnly, immutable bool
	// schema is the store's schema version; below SchemaVersion only in
	// a read-only DB (a writer migrates).
	schema int
	// raws are idle raw connections (see rawConn).
	raws chan *rawConn
}

var _ flow.Store = (*DB)(nil)

// Open opens the SQLite store at path for writing, creating it if needed,
// and brings its schema up to date. The version check and the migrations
// run in one BEGIN IMMEDIATE transaction, so when several processes open a
// new store at once exactly one migrates and the others wait (busy
// timeout) and find it done. A file that is not a pilotwire store, or a
// store of a newer schema, is refused and left as it was.
func Open(ctx context.Context, path string) (*DB, error) {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("create store %s: directory %s does not exist", path, dir)
		}
		return nil, fmt.Errorf("create store %s: %w", path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("create store %s: %s is not a directory", path, dir)
	}
	if err := checkHeader(path, true); err != nil {
		return nil, err
	}
	c, err := openRaw(path, false, false)
	if err != nil {
		return nil, openError(path, err)
	}
	s := &DB{path: path, raws: make(chan *rawConn, maxIdleRaw)}
	stop := c.interruptOn(ctx)
	err = c.migrate(path)
	if err == nil {
		// WAL lets readers and the writer work at once. Set after the
		// checks, so a refused file is not touched; Close turns it back
		// (see there).
		err = c.execWaiting("PRAGMA journal_mode=WAL")
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.close()
		return nil, openError(path, err)
	}
	s.schema = SchemaVersion
	s.putRaw(c, true)
	return s, nil
}

// OpenReadOnly opens the existing store at path for reading only: SQLite
// mode=ro, no migration, no checkpoint, nothing created beside it. A
// missing file gives ErrNoStore; a file that is not a pilotwire store a
// *NotStoreError; a newer schema a *NewerSchemaError. An older schema is
// read as it is (the tables later migrations add read as empty).
//
// When nothing can write the file (it, or its directory while there is no
// -wal file, is not writable: an evidence copy, a read-only mount), SQLite
// is told so with immutable=1: it then takes no locks and needs no -shm
// file, which it could not create there.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return nil, fmt.Errorf("%w at %s", ErrNoStore, path)
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", path, err)
	case fi.IsDir():
		return nil, &NotStoreError{Path: path, Why: "a directory"}
	}
	if err := checkHeader(path, false); err != nil {
		return nil, err
	}
	s := &DB{path: path, readOnly: true, raws: make(chan *rawConn, maxIdleRaw)}
	wal := false
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		wal = true
	}
	fileW, dirW := writable(path), writable(filepath.Dir(path))
	// With a -wal file holding changes, immutable would hide them: read
	// it the normal way, which works when its -shm file can be used.
	s.immutable = (!fileW || !dirW) && !wal
	c, err := openRaw(path, true, s.immutable)
	if err != nil {
		return nil, openError(path, err)
	}
	stop := c.interruptOn(ctx)
	s.schema, err = c.checkSchema(path)
	if err == nil {
		err = c.compat(s.schema)
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.close()
		if wal && (!fileW || !dirW) && !isStoreError(err) {
			return nil, fmt.Errorf("open store %s: %w (its -wal file holds changes not yet in the store; in a read-only place, copy %s and %s-wal to a writable directory and read the copy)",
				path, err, filepath.Base(path), filepath.Base(path))
		}
		return nil, openError(path, err)
	}
	s.putRaw(c, true)
	return s, nil
}

func isStoreError(err error) bool {
	return errors.As(err, new(*NotStoreError)) || errors.As(err, new(*NewerSchemaError))
}

// openError words an error of opening path, keeping the store's own
// errors as they are.
func openError(path string, err error) error {
	if isStoreError(err) {
		return err
	}
	if strings.Contains(err.Error(), "file is not a database") {
		return &NotStoreError{Path: path, Why: "not an SQLite database"}
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// checkHeader refuses a file that exists and is not an SQLite database,
// without letting SQLite near it. An empty file is refused too, unless
// emptyOK (a writer makes a store of it).
func checkHeader(path string, emptyOK bool) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteMagic))
	n, err := io.ReadFull(f, head)
	switch {
	case n == 0 && emptyOK:
		return nil
	case n == 0:
		return &NotStoreError{Path: path, Why: "the file is empty"}
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("open store %s: %w", path, err)
	case string(head[:n]) != sqliteMagic:
		return &NotStoreError{Path: path, Why: "not an SQLite database"}
	}
	return nil
}

// checkSchema reads which schema the store at path has, refusing a file
// without pilotwire's tables and a newer schema. Run inside the writer's
// transaction, it returns 0 for a new (empty) database.
func (c *rawConn) checkSchema(path string) (int, error) {
	var tables []string
	err := c.run(`SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`, nil,
		func(st uintptr) error {
			tables = append(tables, strings.Clone(c.columnView(st, 0)))
			return nil
		})
	if err != nil {
		return 0, err
	}
	if len(tables) == 0 {
		return 0, nil
	}
	found := false
	for _, t := range tables {
		found = found || t == "schema_migrations"
	}
	if !found {
		if len(tables) > 5 {
			tables = append(tables[:5], "…")
		}
		return 0, &NotStoreError{Path: path, Why: "an SQLite database without pilotwire's tables; it holds " + strings.Join(tables, ", ")}
	}
	var v int64
	if err := c.run(`SELECT COALESCE(MAX(version), 0) FROM main.schema_migrations`, nil, func(st uintptr) error {
		v = c.columnInt(st, 0)
		return nil
	}); err != nil {
		return 0, err
	}
	if v > int64(SchemaVersion) {
		return 0, &NewerSchemaError{Path: path, Schema: int(v), Known: SchemaVersion}
	}
	return int(v), nil
}

// migrate checks the store's schema and applies the migrations it lacks,
// all in one BEGIN IMMEDIATE transaction (see Open).
func (c *rawConn) migrate(path string) (err error) {
	if err := c.exec("BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if err != nil {
			c.exec("ROLLBACK")
		}
	}()
	current, err := c.checkSchema(path)
	if err != nil {
		return err
	}
	if current == 0 {
		if err := c.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	for _, m := range allMigrations[current:] {
		if err := c.exec(m.Body); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if m.Version == activitySchema {
			if err := c.backfillSegmentActivity(); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		if err := c.run(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			[]any{m.Version, time.Now().UTC().Format(time.RFC3339)}, nil); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	if err := c.exec("COMMIT"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// compatTables stand in, on a read-only connection to an older store, for
// the tables later migrations add: empty TEMP tables (in memory, not in
// the file) with the columns the reads use, so the read paths need no
// case of their own for old schemas. Indexed by the version that adds the
// real table.
var compatTables = map[int]string{
	2: `CREATE TEMP TABLE segments (id INTEGER PRIMARY KEY, file TEXT, part INTEGER, first_id INTEGER, n INTEGER,
		start_min INTEGER, start_max INTEGER, source TEXT, data BLOB)`,
	3: `CREATE TEMP TABLE imports (file TEXT PRIMARY KEY, source_file TEXT, flows INTEGER, started_ns INTEGER)`,
	6: `CREATE TEMP TABLE pass_through (host TEXT PRIMARY KEY, reason TEXT, learned_ns INTEGER, learned_tz INTEGER,
		client TEXT, flow_key TEXT)`,
}

// compatColumns stand in, the same way, for the columns later migrations
// add to the flows table: a view named flows, found before the file's
// table of that name, adds them with their defaults. (Activity is summed
// from the flows instead: see activitySchema.)
var compatColumns = []struct {
	version int
	column  string
}{
	{4, "0 AS lost"},
	{6, "'' AS tunnel"},
	{7, "'' AS headers"},
	{proxySchema, "'' AS proxy"},
	{9, "NULL AS bodies"},
}

// compat makes a read-only connection to a store of schema able to run
// the read paths (see compatTables).
func (c *rawConn) compat(schema int) error {
	var cols []string
	for _, cc := range compatColumns {
		if cc.version > schema {
			cols = append(cols, cc.column)
		}
	}
	if len(cols) > 0 {
		if err := c.exec("CREATE TEMP VIEW flows AS SELECT *, " + strings.Join(cols, ", ") + " FROM main.flows"); err != nil {
			return fmt.Errorf("read schema %d: %w", schema, err)
		}
	}
	for v := schema + 1; v <= SchemaVersion; v++ {
		if q, ok := compatTables[v]; ok {
			if err := c.exec(q); err != nil {
				return fmt.Errorf("read schema %d: %w", schema, err)
			}
		}
	}
	return nil
}

// Close closes the store. Flows and PutFlows must have returned.
//
// A writer's Close turns the file back to SQLite's rollback journal when
// no one else has it open: an idle store is then one self-contained file,
// which a reader opens read-only without creating -wal and -shm files
// beside it, and which can be copied alone. While another connection has
// it open (a proxy, a reader) it stays in WAL mode; the last writer to
// close turns it.
func (s *DB) Close() error {
	for {
		select {
		case c := <-s.raws:
			c.close()
			continue
		default:
		}
		break
	}
	if s.readOnly {
		return nil
	}
	c, err := openRaw(s.path, false, false)
	if err != nil {
		return nil // the file is gone or unreadable: nothing to turn
	}
	defer c.close()
	// No waiting: another connection means it is not ours to turn.
	lib.Xsqlite3_busy_timeout(c.tls, c.db, 0)
	c.exec("PRAGMA journal_mode=DELETE")
	return nil
}

// maxIdleRaw is how many idle raw connections a DB keeps.
const maxIdleRaw = 4

// getRaw returns an idle raw connection, or a new one.
func (s *DB) getRaw() (*rawConn, error) {
	select {
	case c := <-s.raws:
		return c, nil
	default:
	}
	c, err := openRaw(s.path, s.readOnly, s.immutable)
	if err != nil {
		return nil, err
	}
	if s.readOnly {
		err = c.compat(s.schema)
	} else {
		// The file keeps WAL mode while any connection has it open; this
		// is for a connection opened after every other closed (and the
		// file was turned back, see Close).
		err = c.execWaiting("PRAGMA journal_mode=WAL")
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// errReadOnly is returned by the writing methods of a read-only DB.
var errReadOnly = errors.New("the store was opened read-only")

// putRaw gives c back for reuse, or closes it when it is not reusable (it
// failed, or was interrupted) or enough are idle.
func (s *DB) putRaw(c *rawConn, reusable bool) {
	if reusable {
		select {
		case s.raws <- c:
			return
		default:
		}
	}
	c.close()
}

// withRaw runs fn on an idle raw connection (see getRaw), with ctx's end
// interrupting its statement. The connection goes back for reuse unless fn
// failed or was interrupted; sound, when not nil, names errors of fn that
// leave the connection as good as before (the caller's own callback
// stopping a read).
func (s *DB) withRaw(ctx context.Context, fn func(c *rawConn) error, sound func(error) bool) error {
	c, err := s.getRaw()
	if err != nil {
		return err
	}
	stop := c.interruptOn(ctx)
	err = fn(c)
	interrupted := !stop()
	soundErr := err == nil || sound != nil && sound(err)
	s.putRaw(c, soundErr && !interrupted)
	if err != nil && !soundErr && interrupted {
		// SQLite's word for an interrupted statement is not always
		// SQLITE_INTERRUPT: one stopped while it was being prepared can
		// fail with a parse error of a half-read trigger ("2 columns
		// assigned 1 values"). The reason is ctx's.
		return ctx.Err()
	}
	return err
}

// upsert writes one flow. Its ID (the last parameter) is used only when the
// Key is new: an update keeps the stored ID, which it returns either way.
const upsert = `INSERT INTO flows (key, start_ns, start_tz, end_ns, client, client_port, device, session, source, source_file, kind, method, scheme, host, port, url, status, bytes_up, bytes_down, sni, alpn, tls_version, error, decision, reason, note, lost, tunnel, headers, proxy, bodies, id)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT(key) DO UPDATE SET start_ns=excluded.start_ns, start_tz=excluded.start_tz, end_ns=excluded.end_ns, client=excluded.client, client_port=excluded.client_port, device=excluded.device, session=excluded.session, source=excluded.source, source_file=excluded.source_file, kind=excluded.kind, method=excluded.method, scheme=excluded.scheme, host=excluded.host, port=excluded.port, url=excluded.url, status=excluded.status, bytes_up=excluded.bytes_up, bytes_down=excluded.bytes_down, sni=excluded.sni, alpn=excluded.alpn, tls_version=excluded.tls_version, error=excluded.error, decision=excluded.decision, reason=excluded.reason, note=excluded.note, lost=excluded.lost, tunnel=excluded.tunnel, headers=excluded.headers, proxy=excluded.proxy, bodies=excluded.bodies
RETURNING id`

// PutFlows writes flows in one transaction, replacing stored flows with the
// same Key; a later flow with the same Key as an earlier one in the same
// call wins, as row by row.
//
// Bulk imports spend their time here, so PutFlows runs one prepared
// single-row upsert on a raw connection (see rawConn). One row per
// statement: a statement of several rows that may fail half way needs a
// statement journal (a copy of every page it changes).
func (s *DB) PutFlows(ctx context.Context, flows []flow.Flow) error {
	if s.readOnly {
		return fmt.Errorf("put flows: %w", errReadOnly)
	}
	if len(flows) == 0 {
		return nil
	}
	if err := flow.CheckPut(flows); err != nil {
		return err
	}
	err := s.withRaw(ctx, func(c *rawConn) error { return c.putFlows(ctx, flows) }, nil)
	if err != nil {
		return fmt.Errorf("put flows: %w", err)
	}
	return nil
}

// putFlows writes flows in one transaction.
func (c *rawConn) putFlows(ctx context.Context, flows []flow.Flow) (err error) {
	if err := c.useCache(writeCacheKiB); err != nil {
		return err
	}
	if err := c.exec("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.exec("ROLLBACK")
		}
	}()
	st, err := c.prepare(upsert, true)
	if err != nil {
		return err
	}
	next, err := c.nextID()
	if err != nil {
		return err
	}
	// New rows' activity is summed here and added once per window at the
	// end (a trigger per row halved the write rate); a changed row's
	// trigger updates it (migration 0004). A key written twice in the
	// batch has its first write's activity added before the second, whose
	// trigger takes it out again.
	var sum flow.ActivitySum
	inBatch := make(map[string]struct{}, len(flows))
	for i := range flows {
		if i%512 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		f := &flows[i]
		if _, again := inBatch[f.Key]; again {
			if err := c.addRowActivity(&sum); err != nil {
				return err
			}
		}
		inBatch[f.Key] = struct{}{}
		if err := c.reserve(len(f.Key) + len(f.Client) + len(f.Device) + len(f.Session) + len(f.Source) +
			len(f.SourceFile) + len(f.Kind) + len(f.Method) + len(f.Scheme) + len(f.Host) + len(f.URL) + len(f.SNI) +
			len(f.ALPN) + len(f.TLSVersion) + len(f.Error) + len(f.Decision) + len(f.Reason) + len(f.Note) + len(f.Tunnel) + len(f.Headers) + len(f.Proxy) + len(f.Bodies)); err != nil {
			return err
		}
		b := binder{c: c, st: st}
		bindFlow(&b, f)
		b.int(32, next)
		rc := b.rc
		if rc == 0 {
			rc = lib.Xsqlite3_step(c.tls, st)
		}
		if rc == lib.SQLITE_ROW {
			f.ID = c.columnInt(st, 0)
			rc = lib.Xsqlite3_step(c.tls, st)
		}
		if rc != lib.SQLITE_DONE {
			err := c.err(rc)
			lib.Xsqlite3_reset(c.tls, st)
			return fmt.Errorf("flow %s: %w", f.Key, err)
		}
		lib.Xsqlite3_reset(c.tls, st)
		// A new row takes the next ID; an update keeps its own.
		if f.ID == next {
			next++
			sum.Add(f)
		}
	}
	if err := c.addRowActivity(&sum); err != nil {
		return err
	}
	if err := c.setNextID(next); err != nil {
		return err
	}
	return c.exec("COMMIT")
}

// bindFlow binds f's values to the upsert's parameters.
func bindFlow(b *binder, f *flow.Flow) {
	_, tz := f.Start.Zone()
	b.text(1, f.Key)
	b.int(2, f.Start.UnixNano())
	b.int(3, int64(tz))
	if f.End.IsZero() {
		b.null(4)
	} else {
		b.int(4, f.End.UnixNano())
	}
	b.text(5, f.Client)
	b.int(6, int64(f.ClientPort))
	b.text(7, f.Device)
	b.text(8, f.Session)
	b.text(9, string(f.Source))
	b.text(10, f.SourceFile)
	b.text(11, string(f.Kind))
	b.text(12, f.Method)
	b.text(13, f.Scheme)
	b.text(14, f.Host)
	b.int(15, int64(f.Port))
	b.text(16, f.URL)
	b.int(17, int64(f.Status))
	b.int(18, f.BytesUp)
	b.int(19, f.BytesDown)
	b.text(20, f.SNI)
	b.text(21, f.ALPN)
	b.text(22, f.TLSVersion)
	b.text(23, f.Error)
	b.text(24, string(f.Decision))
	b.text(25, f.Reason)
	b.text(26, f.Note)
	b.int(27, f.Lost)
	b.text(28, f.Tunnel)
	b.text(29, f.Headers)
	b.text(30, f.Proxy)
	if f.Bodies == nil {
		b.null(31)
	} else {
		b.blob(31, f.Bodies)
	}
}

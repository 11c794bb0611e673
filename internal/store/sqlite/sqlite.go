// Package sqlite implements flow.Store on an SQLite file, through the pure-Go
// modernc.org/sqlite driver, so pilotwire needs no cgo. The database runs in
// WAL mode with synchronous=NORMAL: a committed batch survives a crash of
// the process. The schema comes from embedded, numbered migrations.
//
// Live flows (PutFlows) are one row each in the flows table, upserted by
// Key. Imported files (PutFileFlows) are kept as segments, one row per part
// of a file holding its flows encoded together (segment.go): a row per flow
// capped an import near 100,000 flows/s, a segment per 5,000 flows writes
// over 700,000/s and reads back five times faster. Every read merges both in
// start order (read.go). Flow IDs come from one counter, so a flow written
// later has a greater ID whichever way it is kept.
//
// The loops that move every flow bypass database/sql and call SQLite's C
// API as modernc compiles it to Go (see rawConn in raw.go); schema changes
// and the rest go through database/sql.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
	lib "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a flow.Store on one SQLite file.
type DB struct {
	db   *sql.DB
	path string
	// raws are idle raw connections for PutFlows and Flows (see rawConn).
	raws chan *rawConn
}

var _ flow.Store = (*DB)(nil)

// Open opens (creating if needed) the SQLite database at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// Bulk writes and reads go through raw connections with pragmas of
	// their own (raw.go); these connections only migrate, count and
	// summarise, so they keep SQLite's default page cache.
	q.Add("_pragma", "wal_autocheckpoint(16384)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &DB{db: db, path: path, raws: make(chan *rawConn, maxIdleRaw)}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// Path is the file the store lives in.
func (s *DB) Path() string { return s.path }

// Close closes the database. Flows and PutFlows must have returned.
func (s *DB) Close() error {
	for {
		select {
		case c := <-s.raws:
			c.close()
		default:
			return s.db.Close()
		}
	}
}

// maxIdleRaw is how many idle raw connections a DB keeps.
const maxIdleRaw = 4

// getRaw returns an idle raw connection, or a new one.
func (s *DB) getRaw() (*rawConn, error) {
	select {
	case c := <-s.raws:
		return c, nil
	default:
		return openRaw(s.path)
	}
}

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
	s.putRaw(c, (err == nil || sound != nil && sound(err)) && !interrupted)
	return err
}

func (s *DB) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: bad name", base)
		}
		if v <= current {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, time.Now().UTC().Format(time.RFC3339)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}

const columns = `id, key, start_ns, start_tz, end_ns, client, client_port, device, session, source, source_file, kind, method, scheme, host, port, url, status, bytes_up, bytes_down, sni, alpn, tls_version, error, decision, reason, note`

// upsert writes one flow. Its ID (the last parameter) is used only when the
// Key is new: an update keeps the stored ID.
const upsert = `INSERT INTO flows (key, start_ns, start_tz, end_ns, client, client_port, device, session, source, source_file, kind, method, scheme, host, port, url, status, bytes_up, bytes_down, sni, alpn, tls_version, error, decision, reason, note, id)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT(key) DO UPDATE SET start_ns=excluded.start_ns, start_tz=excluded.start_tz, end_ns=excluded.end_ns, client=excluded.client, client_port=excluded.client_port, device=excluded.device, session=excluded.session, source=excluded.source, source_file=excluded.source_file, kind=excluded.kind, method=excluded.method, scheme=excluded.scheme, host=excluded.host, port=excluded.port, url=excluded.url, status=excluded.status, bytes_up=excluded.bytes_up, bytes_down=excluded.bytes_down, sni=excluded.sni, alpn=excluded.alpn, tls_version=excluded.tls_version, error=excluded.error, decision=excluded.decision, reason=excluded.reason, note=excluded.note`

// PutFlows writes flows in one transaction, replacing stored flows with the
// same Key; a later flow with the same Key as an earlier one in the same
// call wins, as row by row.
//
// Bulk imports spend their time here, so PutFlows runs one prepared
// single-row upsert on a raw connection (see rawConn). One row per
// statement: a statement of several rows that may fail half way needs a
// statement journal (a copy of every page it changes).
func (s *DB) PutFlows(ctx context.Context, flows []flow.Flow) error {
	if len(flows) == 0 {
		return nil
	}
	for i := range flows {
		if flows[i].Key == "" {
			return fmt.Errorf("put flows: flow %d has no key", i)
		}
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
	for i := range flows {
		if i%512 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		f := &flows[i]
		if err := c.reserve(len(f.Key) + len(f.Client) + len(f.Device) + len(f.Session) + len(f.Source) +
			len(f.SourceFile) + len(f.Kind) + len(f.Method) + len(f.Scheme) + len(f.Host) + len(f.URL) + len(f.SNI) +
			len(f.ALPN) + len(f.TLSVersion) + len(f.Error) + len(f.Decision) + len(f.Reason) + len(f.Note)); err != nil {
			return err
		}
		b := binder{c: c, st: st}
		bindFlow(&b, f)
		b.int(27, next)
		rc := b.rc
		if rc == 0 {
			rc = lib.Xsqlite3_step(c.tls, st)
		}
		if rc != lib.SQLITE_DONE {
			err := c.err(rc)
			lib.Xsqlite3_reset(c.tls, st)
			return fmt.Errorf("flow %s: %w", f.Key, err)
		}
		lib.Xsqlite3_reset(c.tls, st)
		// An update leaves the last inserted rowid as it was, below next.
		if lib.Xsqlite3_last_insert_rowid(c.tls, c.db) == next {
			next++
		}
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
}

// Package postgres implements flow.Store on a PostgreSQL database through
// pgx: the store that several proxies and pages share (a provisioning
// centre, several sites), where SQLite is the embedded default of one.
//
// A live flow (PutFlows) is one row of the flows table, found by Key; an
// imported file's part (PutFileFlows) is one row of the segments table,
// its flows encoded together as package segment encodes them for SQLite
// too (parts imported before migration 0007 are rows with their file and
// part, until imported again). Writes go in one transaction each (rows
// with COPY) and take turns on the ID counter's row, so IDs grow in
// commit order (see migrations/0001_flows.sql). Reads run in a REPEATABLE
// READ snapshot and merge rows and segments in start order
// (segment.Read); activity is kept as flows are written, per segment for
// imports (migrations 0003, 0007).
//
// The schema comes from embedded, numbered migrations, applied by Open in
// one transaction under an advisory lock, so proxies starting at once
// migrate once. A database of a newer schema is refused.
//
// Passwords in a URL are never printed: every error names the store by
// Redact(url). Of the project this package imports internal/flow (and
// pattern through it), store/schema and store/segment only.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/schema"
)

//go:embed migrations/*.sql
var migrations embed.FS

// allMigrations are the embedded migrations, oldest first.
var allMigrations = schema.MustLoad("postgres", migrations, "migrations")

// SchemaVersion is the newest schema this build knows.
var SchemaVersion = allMigrations[len(allMigrations)-1].Version

// IsURL reports whether a --store value names a PostgreSQL database
// rather than an SQLite file.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Redact returns the URL with its password (and any password parameter)
// replaced, for messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Not parsable: show only the scheme, not what may be a password.
		if i := strings.Index(raw, "://"); i >= 0 {
			return raw[:i+3] + "…"
		}
		return "(a PostgreSQL URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// NewerSchemaError says that a database was written by a newer pilotwire.
type NewerSchemaError struct {
	Store  string // the redacted URL
	Schema int
	Known  int
}

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("%s was written by a newer pilotwire (schema %d; this one knows up to %d)", e.Store, e.Schema, e.Known)
}

// ErrNoStore is returned (wrapped) by OpenReadOnly for a database that
// holds no pilotwire store yet.
var ErrNoStore = errors.New("no store")

// DB is a flow.Store on one PostgreSQL database.
type DB struct {
	pool     *pgxpool.Pool
	name     string // the redacted URL
	readOnly bool
	// version is the database's schema: SchemaVersion for a writer (it
	// migrates), maybe older for a reader.
	version int
	// open are the keys of the flows this DB wrote open (no end yet) and
	// not yet completed: the only ones a proxy writes again. A batch with
	// none of them is tried as new rows alone (see PutFlows).
	open openKeys
}

var (
	_ flow.Store            = (*DB)(nil)
	_ flow.PassThroughStore = (*DB)(nil)
)

// migrateLock is the advisory lock that Open's migration holds: any
// constant the database's other users do not take.
const migrateLock = 0x70696c6f74 // "pilot"

// Open connects to the database at rawURL for writing and brings its
// schema up to date.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	s, err := connect(ctx, rawURL, false)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, s.wrap("open", err)
	}
	s.version = SchemaVersion
	return s, nil
}

// OpenReadOnly connects for reading only: every transaction is read-only
// (the server refuses writes), nothing is migrated. A database without
// pilotwire's tables gives ErrNoStore, a newer schema *NewerSchemaError.
func OpenReadOnly(ctx context.Context, rawURL string) (*DB, error) {
	s, err := connect(ctx, rawURL, true)
	if err != nil {
		return nil, err
	}
	v, err := s.schema(ctx, s.pool)
	if err == nil && v == 0 {
		err = fmt.Errorf("%w in %s (a proxy or an import with --store %s makes one)", ErrNoStore, s.name, s.name)
	} else if err == nil && v > SchemaVersion {
		err = &NewerSchemaError{Store: s.name, Schema: v, Known: SchemaVersion}
	}
	if err != nil {
		s.pool.Close()
		return nil, err
	}
	s.version = v
	return s, nil
}

func connect(ctx context.Context, rawURL string, readOnly bool) (*DB, error) {
	name := Redact(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, &connectError{fmt.Sprintf("store %s: %s", name, scrub(err.Error(), rawURL)), err}
	}
	if readOnly {
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "pilotwire"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &connectError{fmt.Sprintf("store %s: %s", name, scrub(err.Error(), rawURL)), err}
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, &connectError{fmt.Sprintf("store %s: %s", name, scrub(err.Error(), rawURL)), err}
	}
	return &DB{pool: pool, name: name, readOnly: readOnly}, nil
}

// connectError is an error of reaching the database, worded without its
// password, that keeps the driver's error for errors.As.
type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string { return e.msg }
func (e *connectError) Unwrap() error { return e.err }

// Unreachable reports whether err (of Open) says the server could not be
// reached at all — down, or no route — rather than that it answered and
// refused (no such database, a wrong password, a newer schema).
func Unreachable(err error) bool {
	var ce *connectError
	var pgErr *pgconn.PgError
	return errors.As(err, &ce) && !errors.As(err, &pgErr)
}

// scrub removes the password of rawURL from a driver's message, should
// the driver ever quote it.
func scrub(msg, rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// wrap words an error of the store's, naming it and keeping the password
// out.
func (s *DB) wrap(what string, err error) error {
	var newer *NewerSchemaError
	if errors.As(err, &newer) {
		return err
	}
	return fmt.Errorf("%s: store %s: %w", what, s.name, err)
}

// querier is what schema needs: a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schema returns the database's schema version, 0 when it has none.
func (s *DB) schema(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('pilotwire_schema') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM pilotwire_schema`).Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// migrate applies the migrations the database lacks, in one transaction
// that holds an advisory lock: proxies starting together wait for the
// first and find the work done.
func (s *DB) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
		return err
	}
	current, err := s.schema(ctx, tx)
	if err != nil {
		return err
	}
	if current > SchemaVersion {
		return &NewerSchemaError{Store: s.name, Schema: current, Known: SchemaVersion}
	}
	if current == SchemaVersion {
		return nil
	}
	if current == 0 {
		if _, err := tx.Exec(ctx, `CREATE TABLE pilotwire_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
	}
	for _, m := range allMigrations[current:] {
		if _, err := tx.Exec(ctx, m.Body); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pilotwire_schema (version) VALUES ($1)`, m.Version); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return tx.Commit(ctx)
}

// Close closes the store's connections.
func (s *DB) Close() error {
	s.pool.Close()
	return nil
}

// Name is the store's URL without its password.
func (s *DB) Name() string { return s.name }

var errReadOnly = errors.New("the store was opened read-only")

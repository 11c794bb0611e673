// Package sqlite implements flow.Store on an SQLite file, through the pure-Go
// modernc.org/sqlite driver, so pilotwire needs no cgo. The database runs in
// WAL mode with synchronous=NORMAL: a committed batch survives a crash of
// the process. The schema comes from embedded, numbered migrations.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a flow.Store on one SQLite file.
type DB struct {
	db   *sql.DB
	path string
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
	q.Add("_pragma", "cache_size(-65536)")
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
	s := &DB{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// Path is the file the store lives in.
func (s *DB) Path() string { return s.path }

// Close closes the database.
func (s *DB) Close() error { return s.db.Close() }

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

const upsert = `INSERT INTO flows (key, start_ns, start_tz, end_ns, client, client_port, device, session, source, source_file, kind, method, scheme, host, port, url, status, bytes_up, bytes_down, sni, alpn, tls_version, error, decision, reason, note)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT(key) DO UPDATE SET start_ns=excluded.start_ns, start_tz=excluded.start_tz, end_ns=excluded.end_ns, client=excluded.client, client_port=excluded.client_port, device=excluded.device, session=excluded.session, source=excluded.source, source_file=excluded.source_file, kind=excluded.kind, method=excluded.method, scheme=excluded.scheme, host=excluded.host, port=excluded.port, url=excluded.url, status=excluded.status, bytes_up=excluded.bytes_up, bytes_down=excluded.bytes_down, sni=excluded.sni, alpn=excluded.alpn, tls_version=excluded.tls_version, error=excluded.error, decision=excluded.decision, reason=excluded.reason, note=excluded.note`

// putChunk is how many flows one INSERT statement carries. One: a statement
// of several rows that may fail half way needs a statement journal (a copy
// of every page it changes), which cost more than the per-statement
// overhead it saves once the driver is called directly (see PutFlows).
const putChunk = 1

// upsertN returns the upsert statement for n rows.
func upsertN(n int) string {
	head, tail, _ := strings.Cut(upsert, "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
	row := "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
	return head + "VALUES " + strings.TrimSuffix(strings.Repeat(row+",", n), ",") + tail
}

// putColumns is how many values one flow binds in the upsert.
const putColumns = 26

// PutFlows writes flows in one transaction, replacing stored flows with the
// same Key; a later flow with the same Key as an earlier one in the same
// call wins, as row by row.
//
// Bulk imports spend their time here, so PutFlows talks to the driver
// directly (database/sql/driver through sql.Conn.Raw): one prepared
// statement, one reused argument slice, no conversion of each argument by
// database/sql. The driver gets a context without a Done channel, which
// spares a watcher goroutine per statement; ctx is checked between rows
// instead.
func (s *DB) PutFlows(ctx context.Context, flows []flow.Flow) error {
	if len(flows) == 0 {
		return nil
	}
	for i := range flows {
		if flows[i].Key == "" {
			return fmt.Errorf("put flows: flow %d has no key", i)
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("put flows: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error { return putFlows(ctx, dc, flows) })
	if err != nil {
		return fmt.Errorf("put flows: %w", err)
	}
	return nil
}

// putFlows writes flows through the driver connection dc.
func putFlows(ctx context.Context, dc any, flows []flow.Flow) (err error) {
	bg := context.Background()
	beginner, ok1 := dc.(driver.ConnBeginTx)
	preparer, ok2 := dc.(driver.ConnPrepareContext)
	if !ok1 || !ok2 {
		return fmt.Errorf("driver %T cannot begin transactions or prepare statements with a context", dc)
	}
	tx, err := beginner.BeginTx(bg, driver.TxOptions{})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	stmts := map[int]driver.StmtExecContext{}
	defer func() {
		for _, st := range stmts {
			st.(driver.Stmt).Close()
		}
	}()
	args := make([]driver.NamedValue, putColumns*min(len(flows), putChunk))
	for i := range args {
		args[i].Ordinal = i + 1
	}
	for start := 0; start < len(flows); start += putChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := flows[start:min(start+putChunk, len(flows))]
		st := stmts[len(chunk)]
		if st == nil {
			ps, err := preparer.PrepareContext(bg, upsertN(len(chunk)))
			if err != nil {
				return err
			}
			if st, ok1 = ps.(driver.StmtExecContext); !ok1 {
				ps.Close()
				return fmt.Errorf("driver statement %T cannot execute with a context", ps)
			}
			stmts[len(chunk)] = st
		}
		a := args[:putColumns*len(chunk)]
		for i := range chunk {
			bindFlow(a[i*putColumns:(i+1)*putColumns], &chunk[i])
		}
		if _, err := st.ExecContext(bg, a); err != nil {
			return fmt.Errorf("flows %s … %s: %w", chunk[0].Key, chunk[len(chunk)-1].Key, err)
		}
	}
	return tx.Commit()
}

// bindFlow sets the values of f's upsert arguments, in the order of upsert.
func bindFlow(a []driver.NamedValue, f *flow.Flow) {
	_, tz := f.Start.Zone()
	var end driver.Value
	if !f.End.IsZero() {
		end = f.End.UnixNano()
	}
	a[0].Value = f.Key
	a[1].Value = f.Start.UnixNano()
	a[2].Value = int64(tz)
	a[3].Value = end
	a[4].Value = f.Client
	a[5].Value = int64(f.ClientPort)
	a[6].Value = f.Device
	a[7].Value = f.Session
	a[8].Value = string(f.Source)
	a[9].Value = f.SourceFile
	a[10].Value = string(f.Kind)
	a[11].Value = f.Method
	a[12].Value = f.Scheme
	a[13].Value = f.Host
	a[14].Value = int64(f.Port)
	a[15].Value = f.URL
	a[16].Value = int64(f.Status)
	a[17].Value = f.BytesUp
	a[18].Value = f.BytesDown
	a[19].Value = f.SNI
	a[20].Value = f.ALPN
	a[21].Value = f.TLSVersion
	a[22].Value = f.Error
	a[23].Value = string(f.Decision)
	a[24].Value = f.Reason
	a[25].Value = f.Note
}

// where turns a filter into a WHERE clause and its arguments.
func where(f flow.Filter) (string, []any) {
	var conds []string
	var args []any
	if f.Client != "" {
		conds = append(conds, `(client = ? OR device = ?)`)
		args = append(args, f.Client, f.Client)
	}
	if f.Host != "" {
		if strings.Contains(f.Host, "*") {
			conds = append(conds, `host GLOB ?`)
			args = append(args, strings.ToLower(f.Host))
		} else {
			conds = append(conds, `host = ?`)
			args = append(args, strings.ToLower(f.Host))
		}
	}
	if f.Source != "" {
		conds = append(conds, `source = ?`)
		args = append(args, string(f.Source))
	}
	if !f.Since.IsZero() {
		conds = append(conds, `start_ns >= ?`)
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		conds = append(conds, `start_ns < ?`)
		args = append(args, f.Until.UnixNano())
	}
	if f.AfterID > 0 {
		conds = append(conds, `id > ?`)
		args = append(args, f.AfterID)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Flows calls fn for each selected flow, in start order.
//
// A report reads a million flows through here, so Flows reads rows from the
// driver directly (database/sql/driver through sql.Conn.Raw) into one
// reused slice of values, instead of through Rows.Scan, and makes each
// zone's *time.Location once per call instead of once per flow.
func (s *DB) Flows(ctx context.Context, f flow.Filter, fn func(flow.Flow) error) error {
	w, args := where(f)
	order := " ORDER BY start_ns, id"
	if f.Newest {
		order = " ORDER BY start_ns DESC, id DESC"
	}
	cols := columns
	if f.Brief {
		cols = briefColumns
	}
	q := `SELECT ` + cols + ` FROM flows` + w + order
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("read flows: %w", err)
	}
	defer conn.Close()
	var fnErr error
	err = conn.Raw(func(dc any) error {
		return readFlows(ctx, dc, q, args, f.Brief, func(fl flow.Flow) error {
			fnErr = fn(fl)
			return fnErr
		})
	})
	switch {
	case err == nil:
		return nil
	case fnErr != nil:
		return fnErr // fn's own error, as it gave it
	}
	return fmt.Errorf("read flows: %w", err)
}

// briefColumns are the columns a Brief read selects.
const briefColumns = `id, start_ns, start_tz, end_ns, client, device, session, bytes_up, bytes_down`

// readFlows runs the query q through the driver connection dc and calls fn
// for each flow, stopping at fn's first error. q selects columns, or
// briefColumns when brief is set.
func readFlows(ctx context.Context, dc any, q string, args []any, brief bool, fn func(flow.Flow) error) error {
	bg := context.Background()
	preparer, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return fmt.Errorf("driver %T cannot prepare statements with a context", dc)
	}
	ps, err := preparer.PrepareContext(bg, q)
	if err != nil {
		return err
	}
	defer ps.Close()
	st, ok := ps.(driver.StmtQueryContext)
	if !ok {
		return fmt.Errorf("driver statement %T cannot query with a context", ps)
	}
	nargs := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nargs[i] = driver.NamedValue{Ordinal: i + 1, Value: driverValue(a)}
	}
	rows, err := st.QueryContext(bg, nargs)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		dest  = make([]driver.Value, 27)
		zones = zoneCache{}
	)
	if brief {
		dest = dest[:9]
	}
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := rows.Next(dest); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		var fl flow.Flow
		if brief {
			fl.ID = asInt(dest[0])
			loc := zones.get(asInt(dest[2]))
			fl.Start = time.Unix(0, asInt(dest[1])).In(loc)
			if dest[3] != nil {
				fl.End = time.Unix(0, asInt(dest[3])).In(loc)
			}
			fl.Client = asString(dest[4])
			fl.Device = asString(dest[5])
			fl.Session = asString(dest[6])
			fl.BytesUp = asInt(dest[7])
			fl.BytesDown = asInt(dest[8])
			if err := fn(fl); err != nil {
				return err
			}
			continue
		}
		fl.ID = asInt(dest[0])
		fl.Key = asString(dest[1])
		loc := zones.get(asInt(dest[3]))
		fl.Start = time.Unix(0, asInt(dest[2])).In(loc)
		if dest[4] != nil {
			fl.End = time.Unix(0, asInt(dest[4])).In(loc)
		}
		fl.Client = asString(dest[5])
		fl.ClientPort = int(asInt(dest[6]))
		fl.Device = asString(dest[7])
		fl.Session = asString(dest[8])
		fl.Source = flow.Source(asString(dest[9]))
		fl.SourceFile = asString(dest[10])
		fl.Kind = flow.Kind(asString(dest[11]))
		fl.Method = asString(dest[12])
		fl.Scheme = asString(dest[13])
		fl.Host = asString(dest[14])
		fl.Port = int(asInt(dest[15]))
		fl.URL = asString(dest[16])
		fl.Status = int(asInt(dest[17]))
		fl.BytesUp = asInt(dest[18])
		fl.BytesDown = asInt(dest[19])
		fl.SNI = asString(dest[20])
		fl.ALPN = asString(dest[21])
		fl.TLSVersion = asString(dest[22])
		fl.Error = asString(dest[23])
		fl.Decision = flow.Decision(asString(dest[24]))
		fl.Reason = asString(dest[25])
		fl.Note = asString(dest[26])
		if err := fn(fl); err != nil {
			return err
		}
	}
}

// driverValue turns a where() argument into a driver.Value.
func driverValue(a any) driver.Value {
	if v, ok := a.(int); ok {
		return int64(v)
	}
	return a
}

// asInt is an INTEGER column's value; NULL reads as 0.
func asInt(v driver.Value) int64 {
	n, _ := v.(int64)
	return n
}

// asString is a TEXT column's value; NULL reads as "".
func asString(v driver.Value) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	}
	return ""
}

// zoneCache holds one *time.Location per zone offset met in one read:
// time.FixedZone allocates, and a capture has one or two zones.
type zoneCache map[int64]*time.Location

func (z zoneCache) get(offset int64) *time.Location {
	if offset == 0 {
		return time.UTC
	}
	loc, ok := z[offset]
	if !ok {
		loc = time.FixedZone("", int(offset))
		z[offset] = loc
	}
	return loc
}

// CountFlows counts the selected flows.
func (s *DB) CountFlows(ctx context.Context, f flow.Filter) (int64, error) {
	w, args := where(f)
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM flows`+w, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count flows: %w", err)
	}
	return n, nil
}

// Clients summarises each client, newest activity first.
func (s *DB) Clients(ctx context.Context, f flow.Filter) ([]flow.ClientSummary, error) {
	w, args := where(f)
	// The newest device label of each client (of all its flows, selected
	// or not) comes from a second grouping, not from a subquery per client,
	// which without an index on client would scan every flow once per
	// client. SQLite gives the bare columns of an aggregate query with
	// MAX() the values of the row that holds the maximum.
	q := `SELECT a.client, COALESCE(d.device, ''), a.first, a.last, a.n, a.bytes FROM
		(SELECT client, MIN(start_ns) AS first, MAX(COALESCE(end_ns, start_ns)) AS last, COUNT(*) AS n,
			SUM(bytes_up + bytes_down) AS bytes FROM flows` + w + ` GROUP BY client) a
		LEFT JOIN (SELECT client, device, MAX(start_ns) FROM flows WHERE device != '' GROUP BY client) d ON d.client = a.client
		ORDER BY a.last DESC`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	defer rows.Close()
	var out []flow.ClientSummary
	for rows.Next() {
		var c flow.ClientSummary
		var first, last int64
		if err := rows.Scan(&c.Client, &c.Device, &first, &last, &c.Flows, &c.Bytes); err != nil {
			return nil, fmt.Errorf("list clients: %w", err)
		}
		c.First, c.Last = time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return out, nil
}

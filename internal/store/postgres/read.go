package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/schema"
	"github.com/pilotwire/pilotwire/internal/store/segment"
)

// readPage is how many rows a read takes from its snapshot at a time: fn
// runs between pages, with no result set open, so a reader that stops
// early costs one page, not the rest of the table.
const readPage = 20000

// query builds a WHERE clause with numbered parameters.
type query struct {
	conds []string
	args  []any
}

func (q *query) add(cond string, args ...any) {
	for range args {
		q.args = append(q.args, nil)
	}
	n := len(q.args) - len(args)
	copy(q.args[n:], args)
	for i := range args {
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", n+i+1), 1)
	}
	q.conds = append(q.conds, cond)
}

func (q *query) where() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}

// filterQuery is the SQL of f: exact is false when it selects more than
// f (host patterns, Judge's failures), so that every flow must pass
// Filter.Match too and LIMIT and COUNT cannot be left to the server.
func filterQuery(f flow.Filter) (q query, exact bool) {
	exact = true
	if f.Client != "" {
		q.add(`(client = ? OR device = ?)`, f.Client, f.Client)
	}
	if len(f.Hosts) > 0 {
		var literal []string
		for _, p := range f.Hosts {
			if !p.Literal() {
				literal = nil
				break
			}
			literal = append(literal, p.String())
		}
		if literal != nil {
			q.add(`host = ANY(?)`, literal)
		} else {
			exact = false
		}
	}
	if f.Proxy != "" {
		q.add(`proxy = ?`, f.Proxy)
	}
	if f.Source != "" {
		q.add(`source = ?`, string(f.Source))
	}
	if !f.Since.IsZero() {
		q.add(`start_ns >= ?`, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		q.add(`start_ns < ?`, f.Until.UnixNano())
	}
	if f.AfterID > 0 {
		q.add(`id > ?`, f.AfterID)
	}
	if !f.Before.IsZero() {
		q.add(`(start_ns, id) < (?, ?)`, f.Before.Start.UnixNano(), f.Before.ID)
	}
	if f.Text != "" {
		// lower() folds more than ASCII: a superset, which Match trims.
		t := flow.LowerASCII(f.Text)
		q.add(`(strpos(lower(host), lower(?)) > 0 OR strpos(lower(url), lower(?)) > 0)`, t, t)
		exact = false
	}
	if f.Problems {
		// Every flow flow.Judge calls refused or failed, and some more
		// (the flows_problems index's condition).
		q.add(`(decision = 'denied' OR error <> '' OR status >= 400 AND status <> 401 OR bytes_down < 64)`)
		exact = false
	}
	return q, exact
}

// Flows calls fn for each flow f selects, by start time then ID, from one
// snapshot of the database.
func (s *DB) Flows(ctx context.Context, f flow.Filter, fn func(flow.Flow) error) error {
	// fn's own error is returned as it is; the database's are worded.
	var fnErr error
	own := func(fl flow.Flow) error {
		if err := fn(fl); err != nil {
			fnErr = err
			return err
		}
		return nil
	}
	err := s.read(ctx, func(tx pgx.Tx) error { return s.flows(ctx, tx, f, own) })
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return s.wrap("read flows", err)
	}
	return nil
}

// read runs fn in a read-only REPEATABLE READ transaction: one snapshot
// however many statements it runs.
func (s *DB) read(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (s *DB) flows(ctx context.Context, tx pgx.Tx, f flow.Filter, fn func(flow.Flow) error) error {
	q, exact := filterQuery(f)
	order, cmp := "start_ns, id", ">"
	if f.Newest {
		order, cmp = "start_ns DESC, id DESC", "<"
	}
	// The columns of the fields asked for.
	fields := f.Read(exact)
	cols, sc := newRowScanner(fields)
	segs, err := s.segmentsFor(ctx, tx, f)
	if err != nil {
		return err
	}
	if f.Limit == 0 && len(segs) == 0 {
		return s.stream(ctx, tx, `SELECT `+cols+` FROM flows`+q.where()+` ORDER BY `+order, q.args, sc, exact, f, fn)
	}
	// Page by page, so that the connection is free between pages for the
	// segments' blobs, and a reader that stops early costs one page.
	rows := &pagedRows{ctx: ctx, tx: tx, f: f, q: q, exact: exact, sql: `SELECT ` + cols + ` FROM flows`, order: order, cmp: cmp, sc: sc}
	if err := rows.fetch(); err != nil {
		return err
	}
	opts := segment.FilterOpts(f)
	opts.In, opts.Zones, opts.Brief = sc.in, sc.zones, f.Brief
	return segment.Read(ctx, f, rows, segs, segmentBlobs(ctx, tx), &opts, fn)
}

// pagedRows are the rows a read selects, readPage at a time from the
// read's snapshot (keyset paging: each page starts after the last row of
// the one before), as segment.Rows.
type pagedRows struct {
	ctx               context.Context
	tx                pgx.Tx
	f                 flow.Filter
	q                 query
	exact             bool
	sql, order, cmp   string
	sc                *rowScanner
	page              []flow.Flow
	i                 int
	given             int // rows handed out, for an exact read's LIMIT
	lastStart, lastID int64
	started, done     bool
}

func (r *pagedRows) Current() *flow.Flow {
	if r.i < len(r.page) {
		return &r.page[r.i]
	}
	return nil
}

func (r *pagedRows) Next() error {
	r.i++
	r.given++
	if r.i < len(r.page) || r.done {
		return nil
	}
	return r.fetch()
}

// fetch reads the next page that holds a row Match keeps, or none when
// the rows are at their end.
func (r *pagedRows) fetch() error {
	for !r.done {
		pq := r.q
		pq.conds, pq.args = append([]string(nil), r.q.conds...), append([]any(nil), r.q.args...)
		if r.started {
			pq.add(`(start_ns, id) `+r.cmp+` (?, ?)`, r.lastStart, r.lastID)
		}
		limit := readPage
		if r.exact && r.f.Limit > 0 && r.f.Limit-r.given < limit {
			limit = max(r.f.Limit-r.given, 0)
		}
		if limit == 0 {
			r.page, r.i, r.done = r.page[:0], 0, true
			return nil
		}
		rows, err := r.tx.Query(r.ctx, r.sql+pq.where()+` ORDER BY `+r.order+fmt.Sprintf(` LIMIT %d`, limit), pq.args...)
		if err != nil {
			return err
		}
		r.page, r.i = r.page[:0], 0
		read := 0
		for rows.Next() {
			var fl flow.Flow
			if err := r.sc.scan(rows, &fl); err != nil {
				rows.Close()
				return err
			}
			read++
			r.started, r.lastStart, r.lastID = true, fl.Start.UnixNano(), fl.ID
			if !r.exact && !r.f.Match(&fl) {
				continue
			}
			r.page = append(r.page, fl)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		r.done = read < limit
		if len(r.page) > 0 {
			return nil
		}
	}
	return nil
}

// scanRaw decodes a row of raw values (bigint, integer, text) into fl.
func (r *rowScanner) scanRaw(vals [][]byte, fl *flow.Flow) error {
	if len(vals) != 3+len(r.plan) || len(r.text) != len(vals) {
		return fmt.Errorf("%d columns, want %d", len(vals), 3+len(r.plan))
	}
	// An integer column: 8 or 4 bytes big-endian in binary, digits in
	// text.
	num := func(col, size int) (int64, error) {
		b := vals[col]
		switch {
		case r.text[col]:
			v, err := strconv.ParseInt(string(b), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("column %d: %w", col, err)
			}
			return v, nil
		case len(b) == 8 && size == 8:
			return int64(binary.BigEndian.Uint64(b)), nil
		case len(b) == 4 && size == 4:
			return int64(int32(binary.BigEndian.Uint32(b))), nil
		}
		return 0, fmt.Errorf("column %d: an integer of %d bytes, want %d", col, len(b), size)
	}
	str := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		if v, ok := r.in[string(b)]; ok { // no allocation: the compiler looks up without converting
			return v
		}
		v := string(b)
		if len(r.in) < 1<<16 {
			r.in[v] = v
		}
		return v
	}
	id, err1 := num(0, 8)
	start, err2 := num(1, 8)
	tz, err3 := num(2, 4)
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	loc := r.zones.Get(tz)
	*fl = flow.Flow{ID: id, Start: time.Unix(0, start).In(loc)}
	for k, f := range r.plan {
		b := vals[3+k]
		var err error
		var n int64
		switch f {
		case flow.FieldKey:
			fl.Key = string(b)
		case flow.FieldEnd:
			if b != nil {
				n, err = num(3+k, 8)
				fl.End = time.Unix(0, n).In(loc)
			}
		case flow.FieldClient:
			fl.Client = str(b)
		case flow.FieldClientPort:
			n, err = num(3+k, 4)
			fl.ClientPort = int(n)
		case flow.FieldDevice:
			fl.Device = str(b)
		case flow.FieldSession:
			fl.Session = str(b)
		case flow.FieldSource:
			fl.Source = flow.Source(str(b))
		case flow.FieldSourceFile:
			fl.SourceFile = str(b)
		case flow.FieldKind:
			fl.Kind = flow.Kind(str(b))
		case flow.FieldMethod:
			fl.Method = str(b)
		case flow.FieldScheme:
			fl.Scheme = str(b)
		case flow.FieldHost:
			fl.Host = str(b)
		case flow.FieldPort:
			n, err = num(3+k, 4)
			fl.Port = int(n)
		case flow.FieldURL:
			fl.URL = string(b)
		case flow.FieldStatus:
			n, err = num(3+k, 4)
			fl.Status = int(n)
		case flow.FieldBytesUp:
			fl.BytesUp, err = num(3+k, 8)
		case flow.FieldBytesDown:
			fl.BytesDown, err = num(3+k, 8)
		case flow.FieldSNI:
			fl.SNI = str(b)
		case flow.FieldALPN:
			fl.ALPN = str(b)
		case flow.FieldTLSVersion:
			fl.TLSVersion = str(b)
		case flow.FieldError:
			fl.Error = str(b)
		case flow.FieldDecision:
			fl.Decision = flow.Decision(str(b))
		case flow.FieldReason:
			fl.Reason = str(b)
		case flow.FieldNote:
			fl.Note = str(b)
		case flow.FieldLost:
			fl.Lost, err = num(3+k, 8)
		case flow.FieldTunnel:
			fl.Tunnel = str(b)
		case flow.FieldHeaders:
			fl.Headers = string(b)
		case flow.FieldProxy:
			fl.Proxy = str(b)
		case flow.FieldBodies:
			fl.Bodies, err = r.bytea(3+k, b)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stream reads a whole selection in one statement: the server sends rows
// while fn works on the ones before, which a read page by page would
// wait for at every page (a million-flow report read 1.7 s that way, 1.4
// s streamed). fn stopping early cancels the statement rather than
// reading the rest. (Decoding in a goroutine of its own was slower on two
// CPUs, the server's backend taking one.)
func (s *DB) stream(ctx context.Context, tx pgx.Tx, sql string, args []any, sc *rowScanner, exact bool, f flow.Filter, fn func(flow.Flow) error) error {
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := tx.Query(qctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var fl flow.Flow
		if err := sc.scan(rows, &fl); err != nil {
			return err
		}
		if !exact && !f.Match(&fl) {
			continue
		}
		if err := fn(fl); err != nil {
			cancel() // before Close, which would read every row left
			return err
		}
	}
	return rows.Err()
}

// rowScanner reads rows of the columns a read asks for (flow.Fields)
// from their raw values, in either result format (binary, which pgx
// asks for, or text, with the simple protocol): one decoder, whose
// strings that repeat from row to row (a host, a client) are made once.
type rowScanner struct {
	plan  []flow.Fields // the field of each column after id, start_ns, start_tz
	text  []bool        // by column: the server sent it as text (known at the first row)
	zones segment.Zones
	in    segment.Interner // strings made so far, by value
}

// newRowScanner returns the column list of a read of fields fs and its
// scanner.
func newRowScanner(fs flow.Fields) (string, *rowScanner) {
	r := &rowScanner{zones: segment.Zones{}, in: segment.Interner{}}
	cols := []string{"id", "start_ns", "start_tz"}
	for _, fc := range schema.FieldColumns {
		if fs&fc.Field == 0 {
			continue
		}
		cols = append(cols, fc.Column)
		r.plan = append(r.plan, fc.Field)
	}
	return strings.Join(cols, ", "), r
}

// bytea is a bytea column's value: the bytes in binary format, `\x` and
// hex digits in text; nil for NULL.
func (r *rowScanner) bytea(col int, b []byte) ([]byte, error) {
	switch {
	case b == nil:
		return nil, nil
	case !r.text[col]:
		return bytes.Clone(b), nil
	case len(b) >= 2 && b[0] == '\\' && b[1] == 'x':
		v, err := hex.DecodeString(string(b[2:]))
		if err != nil {
			return nil, fmt.Errorf("column %d: %w", col, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("column %d: bytea in text not in hex format", col)
}

// scan reads the current row into fl.
func (r *rowScanner) scan(rows pgx.Rows, fl *flow.Flow) error {
	if r.text == nil {
		fds := rows.FieldDescriptions()
		r.text = make([]bool, len(fds))
		for k, fd := range fds {
			r.text[k] = fd.Format == pgx.TextFormatCode
		}
	}
	return r.scanRaw(rows.RawValues(), fl)
}

// CountFlows returns how many flows f selects, ignoring f.Limit.
func (s *DB) CountFlows(ctx context.Context, f flow.Filter) (int64, error) {
	q, exact := filterQuery(f)
	if !exact {
		var n int64
		f.Limit = 0
		err := s.Flows(ctx, f, func(flow.Flow) error { n++; return nil })
		return n, err
	}
	var n int64
	err := s.read(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM flows`+q.where(), q.args...).Scan(&n); err != nil {
			return err
		}
		inSegments, err := s.countSegmentFlows(ctx, tx, f)
		n += inSegments
		return err
	})
	if err != nil {
		return 0, s.wrap("count flows", err)
	}
	return n, nil
}

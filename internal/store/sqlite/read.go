package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/schema"
	"github.com/pilotwire/pilotwire/internal/store/segment"
	lib "modernc.org/sqlite/lib"
)

// Flows live in two places: live flows one per row of the flows table,
// imported files as segments (package segment). Every read runs in one read
// transaction, so it sees both as of one moment, and merges them
// (segment.Read): the rows come from SQLite in start order, each segment
// is sorted already.

// where turns a filter into a WHERE clause on the flows table and its
// arguments. exact is false when the clause selects more than the filter
// (a host pattern's wider GLOB, a superset of the failures Judge names):
// then every row must pass Filter.Match as well, and LIMIT and COUNT
// cannot be left to SQL.
func where(f flow.Filter) (clause string, args []any, exact bool) {
	var conds []string
	exact = true
	if f.Client != "" {
		conds = append(conds, `(client = ? OR device = ?)`)
		args = append(args, f.Client, f.Client)
	}
	if len(f.Hosts) > 0 {
		var ors, in []string
		for _, p := range f.Hosts {
			if p.Literal() {
				in = append(in, "?")
				args = append(args, p.String())
			}
		}
		if len(in) > 0 {
			ors = append(ors, `host IN (`+strings.Join(in, ", ")+`)`)
		}
		for _, p := range f.Hosts {
			if !p.Literal() {
				ors = append(ors, `host GLOB ?`)
				args = append(args, p.Glob())
				exact = false
			}
		}
		conds = append(conds, `(`+strings.Join(ors, " OR ")+`)`)
	}
	if f.Proxy != "" {
		conds = append(conds, `proxy = ?`)
		args = append(args, f.Proxy)
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
	if !f.Before.IsZero() {
		ns := f.Before.Start.UnixNano()
		conds = append(conds, `(start_ns < ? OR start_ns = ? AND id < ?)`)
		args = append(args, ns, ns, f.Before.ID)
	}
	if f.Text != "" {
		// SQLite's lower() folds ASCII letters only, as Filter.Text does.
		t := flow.LowerASCII(f.Text)
		conds = append(conds, `(instr(lower(host), ?) > 0 OR instr(lower(url), ?) > 0)`)
		args = append(args, t, t)
	}
	if f.Problems {
		// Every flow flow.Judge calls refused or failed, and some more.
		conds = append(conds, `(decision = 'denied' OR error <> '' OR status >= 400 AND status <> 401 OR bytes_down < 64)`)
		exact = false
	}
	if len(conds) == 0 {
		return "", nil, true
	}
	return " WHERE " + strings.Join(conds, " AND "), args, exact
}

// segmentsFor lists the segments that may hold flows f selects, those with
// the smallest start first (the largest first when desc), judged by what
// the segments table holds beside each blob.
func (c *rawConn) segmentsFor(f flow.Filter, desc bool) ([]segment.Info, error) {
	var conds []string
	var args []any
	for _, cond := range segment.Where(f) {
		conds, args = append(conds, cond.SQL), append(args, cond.Args...)
	}
	q := `SELECT id, first_id, n, start_min, start_max, source FROM segments`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	q += segment.Order(desc)
	var out []segment.Info
	err := c.run(q, args, func(st uintptr) error {
		out = append(out, segment.Info{
			ID: c.columnInt(st, 0), FirstID: c.columnInt(st, 1), N: int(c.columnInt(st, 2)),
			StartMin: c.columnInt(st, 3), StartMax: c.columnInt(st, 4), Source: flow.Source(strings.Clone(c.columnView(st, 5))),
		})
		return nil
	})
	return out, err
}

// segmentBlob is the segment.Blobs of the connection: fn gets the blob
// of seg pointing into SQLite's memory, valid only during the call.
func (c *rawConn) segmentBlob(seg segment.Info, fn func(blob []byte) error) error {
	found := false
	err := c.run(`SELECT data FROM segments WHERE id = ?`, []any{seg.ID}, func(st uintptr) error {
		found = true
		return fn(c.columnBlob(st, 0))
	})
	if err == nil && !found {
		err = fmt.Errorf("segment %d vanished", seg.ID)
	}
	return err
}

// readTx runs fn in a read transaction: everything fn reads comes from one
// snapshot of the database.
func (c *rawConn) readTx(fn func() error) error {
	if err := c.useCache(readCacheKiB); err != nil {
		return err
	}
	if err := c.exec("BEGIN"); err != nil {
		return err
	}
	err := fn()
	if cerr := c.exec("COMMIT"); err == nil {
		err = cerr
	}
	return err
}

// Flows calls fn for each selected flow, in start order.
//
// A report reads a million flows through here, so Flows reads them on a raw
// connection (see rawConn): text is copied out of SQLite only for values
// not seen before in this call (except the key and URL, which rarely
// repeat), and each zone's *time.Location is made once per call.
func (s *DB) Flows(ctx context.Context, f flow.Filter, fn func(flow.Flow) error) error {
	var fnErr error
	err := s.withRaw(ctx, func(c *rawConn) error {
		return c.readTx(func() error {
			return c.readFlows(ctx, f, func(fl flow.Flow) error {
				fnErr = fn(fl)
				return fnErr
			})
		})
	}, func(error) bool { return fnErr != nil })
	switch {
	case err == nil:
		return nil
	case fnErr != nil:
		return fnErr // fn's own error, as it gave it
	}
	return fmt.Errorf("read flows: %w", err)
}

// readFlows merges the selected rows and segment flows into fn.
func (c *rawConn) readFlows(ctx context.Context, f flow.Filter, fn func(flow.Flow) error) error {
	segs, err := c.segmentsFor(f, f.Newest)
	if err != nil {
		return err
	}
	rows, err := c.queryRows(ctx, f)
	if err != nil {
		return err
	}
	defer rows.close()
	opts := segment.FilterOpts(f)
	opts.In, opts.Zones, opts.Brief = rows.in, rows.zones, f.Brief
	if err := rows.next(); err != nil {
		return err
	}
	return segment.Read(ctx, f, rows, segs, c.segmentBlob, &opts, fn)
}

// rowCursor steps through the selected rows of the flows table.
type rowCursor struct {
	c  *rawConn
	st uintptr
	// plan is the field of each column after the first three (id,
	// start_ns, start_tz): what the read asked for (see queryRows).
	plan  []flow.Fields
	zones segment.Zones
	in    segment.Interner
	cur   flow.Flow // the current row, when ok
	ok    bool
	// keep, when not nil, is the filter rows must pass besides the SQL
	// (where's inexact clauses); ctx ends a long run of rows it skips.
	keep func(*flow.Flow) bool
	ctx  context.Context
}

// queryRows starts the query of the rows f selects.
func (c *rawConn) queryRows(ctx context.Context, f flow.Filter) (*rowCursor, error) {
	w, args, exact := where(f)
	order := " ORDER BY start_ns, id"
	if f.Newest {
		order = " ORDER BY start_ns DESC, id DESC"
	}
	// One way to read a row: the columns of the fields asked for.
	fields := f.Read(exact)
	cols, plan := fieldsColumns(fields)
	q := `SELECT ` + cols + ` FROM flows` + w + order
	if f.Limit > 0 && exact {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	st, err := c.prepare(q, false)
	if err != nil {
		return nil, err
	}
	if err := c.bindArgs(st, args); err != nil {
		lib.Xsqlite3_finalize(c.tls, st)
		return nil, err
	}
	rc := &rowCursor{c: c, st: st, plan: plan, zones: segment.Zones{}, in: segment.Interner{}}
	if !exact {
		rc.keep, rc.ctx = f.Match, ctx
	}
	return rc, nil
}

// fieldsColumns is the column list of a read of fields fs, and the field
// of each column after id, start_ns and start_tz.
func fieldsColumns(fs flow.Fields) (string, []flow.Fields) {
	cols := []string{"id", "start_ns", "start_tz"}
	plan := make([]flow.Fields, 0, len(schema.FieldColumns)) // not nil: ID and Start alone are a read of some fields too
	for _, fc := range schema.FieldColumns {
		if fs&fc.Field != 0 {
			cols = append(cols, fc.Column)
			plan = append(plan, fc.Field)
		}
	}
	return strings.Join(cols, ", "), plan
}

// scanFields fills the fields of the current row that r.plan names: the
// one decoder of rows, for whole, Brief and Fields reads alike.
func (r *rowCursor) scanFields(fl *flow.Flow) {
	c, st, in := r.c, r.st, r.in
	fl.ID = c.columnInt(st, 0)
	loc := r.zones.Get(c.columnInt(st, 2))
	fl.Start = time.Unix(0, c.columnInt(st, 1)).In(loc)
	for i, field := range r.plan {
		col := int32(i + 3)
		switch field {
		case flow.FieldKey:
			fl.Key = strings.Clone(c.columnView(st, col))
		case flow.FieldEnd:
			if !c.columnNull(st, col) {
				fl.End = time.Unix(0, c.columnInt(st, col)).In(loc)
			}
		case flow.FieldClient:
			fl.Client = in.Get(c.columnView(st, col))
		case flow.FieldClientPort:
			fl.ClientPort = int(c.columnInt(st, col))
		case flow.FieldDevice:
			fl.Device = in.Get(c.columnView(st, col))
		case flow.FieldSession:
			fl.Session = in.Get(c.columnView(st, col))
		case flow.FieldSource:
			fl.Source = flow.Source(in.Get(c.columnView(st, col)))
		case flow.FieldSourceFile:
			fl.SourceFile = in.Get(c.columnView(st, col))
		case flow.FieldKind:
			fl.Kind = flow.Kind(in.Get(c.columnView(st, col)))
		case flow.FieldMethod:
			fl.Method = in.Get(c.columnView(st, col))
		case flow.FieldScheme:
			fl.Scheme = in.Get(c.columnView(st, col))
		case flow.FieldHost:
			fl.Host = in.Get(c.columnView(st, col))
		case flow.FieldPort:
			fl.Port = int(c.columnInt(st, col))
		case flow.FieldURL:
			fl.URL = strings.Clone(c.columnView(st, col))
		case flow.FieldStatus:
			fl.Status = int(c.columnInt(st, col))
		case flow.FieldBytesUp:
			fl.BytesUp = c.columnInt(st, col)
		case flow.FieldBytesDown:
			fl.BytesDown = c.columnInt(st, col)
		case flow.FieldSNI:
			fl.SNI = in.Get(c.columnView(st, col))
		case flow.FieldALPN:
			fl.ALPN = in.Get(c.columnView(st, col))
		case flow.FieldTLSVersion:
			fl.TLSVersion = in.Get(c.columnView(st, col))
		case flow.FieldError:
			fl.Error = in.Get(c.columnView(st, col))
		case flow.FieldDecision:
			fl.Decision = flow.Decision(in.Get(c.columnView(st, col)))
		case flow.FieldReason:
			fl.Reason = in.Get(c.columnView(st, col))
		case flow.FieldNote:
			fl.Note = in.Get(c.columnView(st, col))
		case flow.FieldLost:
			fl.Lost = c.columnInt(st, col)
		case flow.FieldTunnel:
			fl.Tunnel = in.Get(c.columnView(st, col))
		case flow.FieldHeaders:
			fl.Headers = in.Get(c.columnView(st, col))
		case flow.FieldProxy:
			fl.Proxy = in.Get(c.columnView(st, col))
		case flow.FieldBodies:
			if b := c.columnBlob(st, col); b != nil {
				fl.Bodies = bytes.Clone(b)
			}
		}
	}
}

func (r *rowCursor) close() { lib.Xsqlite3_finalize(r.c.tls, r.st) }

// Current and Next make the cursor the segment.Rows of a merge.
func (r *rowCursor) Current() *flow.Flow {
	if r.ok {
		return &r.cur
	}
	return nil
}

func (r *rowCursor) Next() error { return r.next() }

// next moves to the next row that keep accepts; ok is false after the
// last.
func (r *rowCursor) next() error {
	c, st := r.c, r.st
	for skipped := 1; ; skipped++ {
		switch rc := lib.Xsqlite3_step(c.tls, st); rc {
		case lib.SQLITE_ROW:
		case lib.SQLITE_DONE:
			r.ok = false
			return nil
		default:
			r.ok = false
			return c.err(rc)
		}
		r.cur = flow.Flow{}
		r.scanFields(&r.cur)
		if r.keep == nil || r.keep(&r.cur) {
			r.ok = true
			return nil
		}
		if skipped%4096 == 0 {
			if err := r.ctx.Err(); err != nil {
				r.ok = false
				return err
			}
		}
	}
}

// CountFlows counts the selected flows. A segment wholly selected counts
// by the number the segments table keeps; only one that a filter cuts into
// is decoded.
func (s *DB) CountFlows(ctx context.Context, f flow.Filter) (int64, error) {
	var n int64
	err := s.withRaw(ctx, func(c *rawConn) error {
		return c.readTx(func() error {
			var err error
			n, err = c.countFlows(ctx, f)
			return err
		})
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("count flows: %w", err)
	}
	return n, nil
}

func (c *rawConn) countFlows(ctx context.Context, f flow.Filter) (int64, error) {
	var n int64
	if w, args, exact := where(f); exact {
		if err := c.run(`SELECT COUNT(*) FROM flows`+w, args, func(st uintptr) error {
			n = c.columnInt(st, 0)
			return nil
		}); err != nil {
			return 0, err
		}
	} else {
		// Rows that the SQL lets through must pass Match too.
		rows, err := c.queryRows(ctx, f)
		if err != nil {
			return 0, err
		}
		defer rows.close()
		for err = rows.next(); err == nil && rows.ok; err = rows.next() {
			n++
		}
		if err != nil {
			return 0, err
		}
	}
	segs, err := c.segmentsFor(f, false)
	if err != nil {
		return 0, err
	}
	inSegments, err := segment.Count(ctx, f, segs, c.segmentBlob)
	if err != nil {
		return 0, err
	}
	n += inSegments
	return n, nil
}

package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// readPage is how many rows a read takes from its snapshot at a time: fn
// runs between pages, with no result set open, so a reader that stops
// early costs one page, not the rest of the table.
const readPage = 5000

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

const readColumns = `id, key, start_ns, start_tz, end_ns, client, client_port, device, session, source, source_file, kind,
	method, scheme, host, port, url, status, bytes_up, bytes_down, sni, alpn, tls_version, error, decision, reason, note,
	lost, tunnel, headers, proxy`

// Flows calls fn for each flow f selects, by start time then ID, from one
// snapshot of the database.
func (s *DB) Flows(ctx context.Context, f flow.Filter, fn func(flow.Flow) error) error {
	var fnErr error
	err := s.read(ctx, func(tx pgx.Tx) error {
		fnErr = s.flows(ctx, tx, f, fn)
		if fnErr != nil {
			return errStop
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return s.wrap("read flows", err)
	}
	return nil
}

var errStop = fmt.Errorf("stopped")

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
	zones := zoneCache{}
	page := make([]flow.Flow, 0, readPage)
	given := 0
	var last *flow.Flow
	for {
		pq := q
		pq.conds, pq.args = append([]string(nil), q.conds...), append([]any(nil), q.args...)
		if last != nil {
			pq.add(`(start_ns, id) `+cmp+` (?, ?)`, last.Start.UnixNano(), last.ID)
		}
		limit := readPage
		if exact && f.Limit > 0 && f.Limit-given < limit {
			limit = f.Limit - given
		}
		rows, err := tx.Query(ctx, `SELECT `+readColumns+` FROM flows`+pq.where()+` ORDER BY `+order+fmt.Sprintf(` LIMIT %d`, limit), pq.args...)
		if err != nil {
			return err
		}
		page = page[:0]
		for rows.Next() {
			var fl flow.Flow
			if err := scanFlow(rows, &fl, zones); err != nil {
				rows.Close()
				return err
			}
			page = append(page, fl)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range page {
			if !exact && !f.Match(&page[i]) {
				continue
			}
			if err := fn(page[i]); err != nil {
				return err
			}
			given++
			if f.Limit > 0 && given >= f.Limit {
				return nil
			}
		}
		if len(page) < limit {
			return nil
		}
		last = &page[len(page)-1]
		l := *last
		last = &l
	}
}

// scanFlow reads a row of readColumns.
func scanFlow(rows pgx.Rows, fl *flow.Flow, zones zoneCache) error {
	var startNS int64
	var tz int32
	var endNS *int64
	var source, kind, decision string
	if err := rows.Scan(&fl.ID, &fl.Key, &startNS, &tz, &endNS, &fl.Client, &fl.ClientPort, &fl.Device, &fl.Session,
		&source, &fl.SourceFile, &kind, &fl.Method, &fl.Scheme, &fl.Host, &fl.Port, &fl.URL, &fl.Status, &fl.BytesUp,
		&fl.BytesDown, &fl.SNI, &fl.ALPN, &fl.TLSVersion, &fl.Error, &decision, &fl.Reason, &fl.Note, &fl.Lost,
		&fl.Tunnel, &fl.Headers, &fl.Proxy); err != nil {
		return err
	}
	loc := zones.get(tz)
	fl.Start = time.Unix(0, startNS).In(loc)
	if endNS != nil {
		fl.End = time.Unix(0, *endNS).In(loc)
	}
	fl.Source, fl.Kind, fl.Decision = flow.Source(source), flow.Kind(kind), flow.Decision(decision)
	return nil
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
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM flows`+q.where(), q.args...).Scan(&n); err != nil {
		return 0, s.wrap("count flows", err)
	}
	return n, nil
}

// windowNS is flow.ActivityWindow in nanoseconds.
const windowNS = int64(flow.ActivityWindow)

// activitySQL sums the selected rows up by proxy, client, session and window as
// flow.ActivitySum does: first and last moments with their zones, the
// newest label by (start, ID), PAC flows left out, KindLost counting its
// lost flows.
var activitySQL = fmt.Sprintf(`SELECT proxy, client, session, win,
	min(start_ns), (array_agg(start_tz ORDER BY start_ns, id))[1],
	max(l), (array_agg(start_tz ORDER BY l DESC, start_ns, id))[1],
	count(*) FILTER (WHERE kind <> 'lost'),
	coalesce(sum(bytes_up + bytes_down) FILTER (WHERE kind <> 'lost'), 0)::bigint,
	coalesce(sum(lost) FILTER (WHERE kind = 'lost'), 0)::bigint,
	coalesce((array_agg(device ORDER BY start_ns DESC, id DESC) FILTER (WHERE device <> ''))[1], ''),
	max(start_ns) FILTER (WHERE device <> '')
FROM (SELECT *, (start_ns - ((start_ns %% %[1]d) + %[1]d) %% %[1]d) / %[1]d AS win,
	greatest(start_ns, coalesce(end_ns, start_ns)) AS l FROM flows WHERE_CLAUSE) x
GROUP BY proxy, client, session, win`, windowNS)

// Activity calls fn with the activity f selects (see flow.Store), summed
// by the server from the flows of the windows f can select.
func (s *DB) Activity(ctx context.Context, f flow.Filter, fn func(flow.Activity) error) error {
	var q query
	q.add(`kind <> 'pac'`)
	if f.Client != "" {
		q.add(`client = ?`, f.Client)
	}
	if f.Proxy != "" {
		q.add(`proxy = ?`, f.Proxy)
	}
	if !f.Since.IsZero() {
		q.add(`start_ns >= ?`, flow.WindowOf(f.Since)*windowNS)
	}
	if !f.Until.IsZero() {
		q.add(`start_ns < ?`, (flow.WindowOf(f.Until)+1)*windowNS)
	}
	var all []flow.Activity
	err := s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, strings.Replace(activitySQL, "WHERE_CLAUSE", q.where(), 1), q.args...)
		if err != nil {
			return err
		}
		zones := zoneCache{}
		all = all[:0]
		for rows.Next() {
			var a flow.Activity
			var firstNS, lastNS int64
			var firstTZ, lastTZ int32
			var deviceNS *int64
			if err := rows.Scan(&a.Proxy, &a.Client, &a.Session, &a.Window, &firstNS, &firstTZ, &lastNS, &lastTZ, &a.Flows, &a.Bytes,
				&a.Lost, &a.Device, &deviceNS); err != nil {
				rows.Close()
				return err
			}
			a.First = time.Unix(0, firstNS).In(zones.get(firstTZ))
			a.Last = time.Unix(0, lastNS).In(zones.get(lastTZ))
			if deviceNS != nil {
				a.DeviceAt = time.Unix(0, *deviceNS)
			}
			all = append(all, a)
		}
		return rows.Err()
	})
	if err != nil {
		return s.wrap("read activity", err)
	}
	flow.SortActivity(all)
	for i := range all {
		if !f.MatchActivity(&all[i]) {
			continue
		}
		if err := fn(all[i]); err != nil {
			return err
		}
	}
	return nil
}

// zoneCache holds one *time.Location per zone offset met in one read.
type zoneCache map[int32]*time.Location

func (z zoneCache) get(offset int32) *time.Location {
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

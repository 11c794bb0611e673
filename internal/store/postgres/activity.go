package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/segment"
)

// activitySchema is the first schema that keeps activity (migration
// 0003); a read-only store of an older one has it summed at each read.
const activitySchema = 3

// windowNS is flow.ActivityWindow in nanoseconds.
const windowNS = int64(flow.ActivityWindow)

// activitySums is the sum, by proxy, client, session and window, of the
// rows of flows (as x, with its window win and last moment l) that
// FROM_ROWS selects: what flow.ActivitySum computes, first and last
// moments with their zones, the newest label by (start, ID), KindLost
// counting its lost flows.
const activitySums = `SELECT proxy, client, session, win,
	min(start_ns), (array_agg(start_tz ORDER BY start_ns, id))[1],
	max(l), (array_agg(start_tz ORDER BY l DESC, start_ns, id))[1],
	count(*) FILTER (WHERE kind <> 'lost'),
	coalesce(sum(bytes_up + bytes_down) FILTER (WHERE kind <> 'lost'), 0)::bigint,
	coalesce(sum(lost) FILTER (WHERE kind = 'lost'), 0)::bigint,
	coalesce((array_agg(device ORDER BY start_ns DESC, id DESC) FILTER (WHERE device <> ''))[1], ''),
	max(start_ns) FILTER (WHERE device <> '')
FROM (FROM_ROWS) x
GROUP BY proxy, client, session, win`

// rowsWithWindow selects flows with their window and last moment.
var rowsWithWindow = fmt.Sprintf(`SELECT f.*, (f.start_ns - ((f.start_ns %% %[1]d) + %[1]d) %% %[1]d) / %[1]d AS win,
	greatest(f.start_ns, coalesce(f.end_ns, f.start_ns)) AS l FROM flows f`, windowNS)

const activityColumns = `proxy, client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns`

// windowKey names one window of one client's activity.
type windowKey struct {
	proxy, client, session string
	win                    int64
}

func windowOf(proxy, client, session string, startNS int64) windowKey {
	return windowKey{proxy, client, session, flow.WindowOf(time.Unix(0, startNS))}
}

// activityChange is what one write does to the activity table: the new
// rows' activity to add, and the windows to sum again from their rows
// (rows left them, or changed in them).
type activityChange struct {
	sum    flow.ActivitySum
	deltas []flow.Activity // changes of rows replaced in place (see delta)
	dirty  map[windowKey]bool
}

// storedRow is what a replaced row was, as far as activity goes.
type storedRow struct {
	proxy, client, session, kind, device string
	startNS                              int64
	startTZ                              int32
	endNS                                *int64
	bytes, lost                          int64
}

// replace accounts for row old replaced by f. The common case, a tunnel
// completed or its bytes so far, only adds bytes and moves the last
// moment later: a delta. Anything else leaves the window (and maybe
// enters another), whose rows are summed again.
func (c *activityChange) replace(old storedRow, f *flow.Flow) {
	_, tz := f.Start.Zone()
	oldLast := old.startNS
	if old.endNS != nil && *old.endNS > oldLast {
		oldLast = *old.endNS
	}
	same := old.proxy == f.Proxy && old.client == f.Client && old.session == f.Session && old.kind == string(f.Kind) &&
		old.device == f.Device && old.startNS == f.Start.UnixNano() && old.startTZ == int32(tz) && f.Kind != flow.KindPAC &&
		f.LastMoment().UnixNano() >= oldLast
	if !same {
		c.touch(windowOf(old.proxy, old.client, old.session, old.startNS))
		c.touch(windowOf(f.Proxy, f.Client, f.Session, f.Start.UnixNano()))
		return
	}
	d := flow.Activity{Proxy: f.Proxy, Client: f.Client, Session: f.Session, Window: flow.WindowOf(f.Start), First: f.Start, Last: f.LastMoment()}
	if f.Kind == flow.KindLost {
		d.Lost = f.Lost - old.lost
	} else {
		d.Bytes = f.Bytes() - old.bytes
	}
	c.deltas = append(c.deltas, d)
}

func (c *activityChange) add(f *flow.Flow) { c.sum.Add(f) }

func (c *activityChange) touch(k windowKey) {
	if c.dirty == nil {
		c.dirty = map[windowKey]bool{}
	}
	c.dirty[k] = true
}

// apply writes the change in tx, after the rows were written.
func (c *activityChange) apply(ctx context.Context, tx pgx.Tx) error {
	// One row per window for the statement: deltas merged in.
	for i := range c.deltas {
		c.sum.Merge(&c.deltas[i])
	}
	acts := c.sum.Activity()
	cols := &activityArrays{}
	for i := range acts {
		a := &acts[i]
		if c.dirty[windowKey{a.Proxy, a.Client, a.Session, a.Window}] {
			continue // summed again below, with these rows
		}
		cols.add(a)
	}
	if len(cols.proxies) > 0 {
		// The same merge as package sqlite's activityAdd.
		_, err := tx.Exec(ctx, `INSERT INTO activity (`+activityColumns+`)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::integer[], $7::bigint[],
				$8::integer[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::bigint[])
			ON CONFLICT (proxy, client, session, win) DO UPDATE SET
				first_tz = CASE WHEN excluded.first_ns < activity.first_ns THEN excluded.first_tz ELSE activity.first_tz END,
				first_ns = least(activity.first_ns, excluded.first_ns),
				last_tz = CASE WHEN excluded.last_ns > activity.last_ns THEN excluded.last_tz ELSE activity.last_tz END,
				last_ns = greatest(activity.last_ns, excluded.last_ns),
				flows = activity.flows + excluded.flows,
				bytes = activity.bytes + excluded.bytes,
				lost = activity.lost + excluded.lost,
				device = CASE WHEN excluded.device_ns >= coalesce(activity.device_ns, excluded.device_ns) THEN excluded.device ELSE activity.device END,
				device_ns = CASE WHEN excluded.device_ns >= coalesce(activity.device_ns, excluded.device_ns) THEN excluded.device_ns ELSE activity.device_ns END`,
			cols.args()...)
		if err != nil {
			return fmt.Errorf("activity: %w", err)
		}
	}
	if len(c.dirty) == 0 {
		return nil
	}
	var proxies, clients, sessions []string
	var wins []int64
	for k := range c.dirty {
		proxies, clients, sessions, wins = append(proxies, k.proxy), append(clients, k.client), append(sessions, k.session), append(wins, k.win)
	}
	const dirty = `unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS d(proxy, client, session, win)`
	if _, err := tx.Exec(ctx, `DELETE FROM activity a USING `+dirty+`
		WHERE a.proxy = d.proxy AND a.client = d.client AND a.session = d.session AND a.win = d.win`,
		proxies, clients, sessions, wins); err != nil {
		return fmt.Errorf("activity: %w", err)
	}
	from := rowsWithWindow + ` JOIN ` + dirty + ` ON f.client = d.client AND f.session = d.session AND f.proxy = d.proxy
		AND f.start_ns >= d.win * ` + fmt.Sprint(windowNS) + ` AND f.start_ns < (d.win + 1) * ` + fmt.Sprint(windowNS) + ` WHERE f.kind <> 'pac'`
	if _, err := tx.Exec(ctx, `INSERT INTO activity (`+activityColumns+`) `+strings.Replace(activitySums, "FROM_ROWS", from, 1),
		proxies, clients, sessions, wins); err != nil {
		return fmt.Errorf("activity: %w", err)
	}
	return nil
}

// Activity calls fn with the activity f selects (see flow.Store): the
// activity table's rows, or on an older read-only store, sums of its flows.
func (s *DB) Activity(ctx context.Context, f flow.Filter, fn func(flow.Activity) error) error {
	var q query
	var sql string
	if s.version >= activitySchema {
		if f.Client != "" {
			q.add(`client = ?`, f.Client)
		}
		if f.Proxy != "" {
			q.add(`proxy = ?`, f.Proxy)
		}
		if !f.Since.IsZero() {
			q.add(`win >= ?`, flow.WindowOf(f.Since))
		}
		if !f.Until.IsZero() {
			q.add(`win <= ?`, flow.WindowOf(f.Until))
		}
		sql = `SELECT ` + activityColumns + ` FROM activity` + q.where()
		if s.version >= segmentSchema {
			// Imports' activity, kept per segment: the same conditions,
			// the same parameters. A window met in both (or in several
			// segments) is merged below.
			sql += ` UNION ALL SELECT ` + activityColumns + ` FROM segment_activity` + q.where()
		}
	} else {
		q.add(`f.kind <> 'pac'`)
		if f.Client != "" {
			q.add(`f.client = ?`, f.Client)
		}
		if f.Proxy != "" {
			q.add(`f.proxy = ?`, f.Proxy)
		}
		if !f.Since.IsZero() {
			q.add(`f.start_ns >= ?`, flow.WindowOf(f.Since)*windowNS)
		}
		if !f.Until.IsZero() {
			q.add(`f.start_ns < ?`, (flow.WindowOf(f.Until)+1)*windowNS)
		}
		sql = strings.Replace(activitySums, "FROM_ROWS", rowsWithWindow+q.where(), 1)
	}
	// Rows' activity and segments' meet here, window by window.
	var sum flow.ActivitySum
	err := s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, q.args...)
		if err != nil {
			return err
		}
		zones := segment.Zones{}
		sum = flow.ActivitySum{}
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
			a.First = time.Unix(0, firstNS).In(zones.Get(int64(firstTZ)))
			a.Last = time.Unix(0, lastNS).In(zones.Get(int64(lastTZ)))
			if deviceNS != nil {
				a.DeviceAt = time.Unix(0, *deviceNS)
			}
			sum.Merge(&a)
		}
		return rows.Err()
	})
	if err != nil {
		return s.wrap("read activity", err)
	}
	all := sum.Activity()
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

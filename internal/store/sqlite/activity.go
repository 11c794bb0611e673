package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/segment"
)

// activitySchema is the first schema that keeps activity (migration
// 0004): a read-only store of an older one has none, and Activity sums its
// flows up instead.
const activitySchema = 4

// proxySchema is the first schema that keeps flows' proxy names
// (migration 0008), in the flows and in the activity tables.
const proxySchema = 8

// Activity calls fn with the activity f selects (see flow.Store). Rows'
// activity is kept by triggers on the flows table, segments' is written
// with each segment; the two meet here, window by window.
func (s *DB) Activity(ctx context.Context, f flow.Filter, fn func(flow.Activity) error) error {
	if s.schema != 0 && s.schema < activitySchema {
		return s.activityFromFlows(ctx, f, fn)
	}
	// Rows' activity and segments' meet here, window by window.
	var sum flow.ActivitySum
	err := s.withRaw(ctx, func(c *rawConn) error {
		sum = flow.ActivitySum{}
		zones := segment.Zones{}
		in := segment.Interner{}
		var conds []string
		var args []any
		if f.Client != "" {
			conds, args = append(conds, `client = ?`), append(args, f.Client)
		}
		if !f.Since.IsZero() {
			conds, args = append(conds, `win >= ?`), append(args, flow.WindowOf(f.Since))
		}
		if !f.Until.IsZero() {
			// A window's first moment is known only once rows and segments
			// meet: this selects a superset, MatchActivity the rest.
			conds, args = append(conds, `win <= ?`), append(args, flow.WindowOf(f.Until))
		}
		w := ""
		if len(conds) > 0 {
			w = ` WHERE ` + strings.Join(conds, " AND ")
		}
		cols := `proxy, client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns`
		if s.schema != 0 && s.schema < proxySchema {
			cols = `'' AS ` + cols // a read-only store of an older schema: every flow of the unnamed proxy
		}
		q := `SELECT ` + cols + ` FROM activity` + w + ` UNION ALL SELECT ` + cols + ` FROM segment_activity` + w
		return c.run(q, append(args, args...), func(st uintptr) error {
			a := flow.Activity{
				Proxy:   in.Get(c.columnView(st, 0)),
				Client:  in.Get(c.columnView(st, 1)),
				Session: in.Get(c.columnView(st, 2)),
				Window:  c.columnInt(st, 3),
				First:   time.Unix(0, c.columnInt(st, 4)).In(zones.Get(c.columnInt(st, 5))),
				Last:    time.Unix(0, c.columnInt(st, 6)).In(zones.Get(c.columnInt(st, 7))),
				Flows:   c.columnInt(st, 8),
				Bytes:   c.columnInt(st, 9),
				Lost:    c.columnInt(st, 10),
				Device:  in.Get(c.columnView(st, 11)),
			}
			if !c.columnNull(st, 12) {
				a.DeviceAt = time.Unix(0, c.columnInt(st, 12))
			}
			sum.Merge(&a)
			return nil
		})
	}, nil)
	if err != nil {
		return fmt.Errorf("read activity: %w", err)
	}
	for _, a := range sum.Activity() {
		if !f.MatchActivity(&a) {
			continue
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

// activityFromFlows sums every flow up (a Brief read), for a store whose
// schema keeps no activity.
func (s *DB) activityFromFlows(ctx context.Context, f flow.Filter, fn func(flow.Activity) error) error {
	var sum flow.ActivitySum
	err := s.Flows(ctx, flow.Filter{Brief: true}, func(fl flow.Flow) error {
		sum.Add(&fl)
		return nil
	})
	if err != nil {
		return err
	}
	for _, a := range sum.Activity() {
		if !f.MatchActivity(&a) {
			continue
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

// activityAdd adds a window's activity to the activity of rows: the same
// merge as the update trigger's (migration 0004).
const activityAdd = `INSERT INTO activity (proxy, client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns)
	VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
	ON CONFLICT (proxy, client, session, win) DO UPDATE SET
		first_tz = CASE WHEN excluded.first_ns < first_ns THEN excluded.first_tz ELSE first_tz END,
		first_ns = min(first_ns, excluded.first_ns),
		last_tz = CASE WHEN excluded.last_ns > last_ns THEN excluded.last_tz ELSE last_tz END,
		last_ns = max(last_ns, excluded.last_ns),
		flows = flows + excluded.flows,
		bytes = bytes + excluded.bytes,
		lost = lost + excluded.lost,
		device = CASE WHEN excluded.device_ns >= coalesce(device_ns, excluded.device_ns) THEN excluded.device ELSE device END,
		device_ns = CASE WHEN excluded.device_ns >= coalesce(device_ns, excluded.device_ns) THEN excluded.device_ns ELSE device_ns END`

// addRowActivity adds the activity of rows just inserted (see activityAdd)
// and empties sum.
func (c *rawConn) addRowActivity(sum *flow.ActivitySum) error {
	for _, a := range sum.Activity() {
		if err := c.run(activityAdd, activityArgs(nil, &a), nil); err != nil {
			return fmt.Errorf("activity: %w", err)
		}
	}
	*sum = flow.ActivitySum{}
	return nil
}

// activityArgs are a's values in the order of the activity columns from
// proxy on, after the leading ones given.
func activityArgs(lead []any, a *flow.Activity) []any {
	_, firstTZ := a.First.Zone()
	_, lastTZ := a.Last.Zone()
	var deviceAt any
	if a.Device != "" {
		deviceAt = a.DeviceAt.UnixNano()
	}
	return append(lead, a.Proxy, a.Client, a.Session, a.Window, a.First.UnixNano(), firstTZ, a.Last.UnixNano(), lastTZ,
		a.Flows, a.Bytes, a.Lost, a.Device, deviceAt)
}

// insertSegmentActivity writes the activity of segment id.
func (c *rawConn) insertSegmentActivity(id int64, acts []flow.Activity) error {
	for i := range acts {
		if err := c.run(`INSERT INTO segment_activity (segment_id, proxy, client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, activityArgs([]any{id}, &acts[i]), nil); err != nil {
			return fmt.Errorf("segment activity: %w", err)
		}
	}
	return nil
}

// backfillSegmentActivity writes the activity of every segment stored
// before the schema kept it (the Go side of migration 0004).
func (c *rawConn) backfillSegmentActivity() error {
	type seg struct {
		id, firstID int64
		blob        []byte
	}
	var segs []seg
	if err := c.run(`SELECT id, first_id, data FROM segments ORDER BY id`, nil, func(st uintptr) error {
		segs = append(segs, seg{c.columnInt(st, 0), c.columnInt(st, 1), append([]byte(nil), c.columnBlob(st, 2)...)})
		return nil
	}); err != nil {
		return err
	}
	var buf []flow.Flow
	for _, sg := range segs {
		flows, err := segment.Decode(sg.blob, sg.firstID, buf, &segment.Opts{Brief: true})
		if err != nil {
			return fmt.Errorf("segment %d: %w", sg.id, err)
		}
		// The table of schema 4, before migration 0008 added the proxy
		// (every segment then was of the unnamed proxy).
		for _, a := range flow.ActivityOf(flows) {
			if err := c.run(`INSERT INTO segment_activity (segment_id, client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns)
				VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`, append([]any{sg.id}, activityArgs(nil, &a)[1:]...), nil); err != nil {
				return fmt.Errorf("segment activity: %w", err)
			}
		}
		buf = flows
	}
	return nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/segment"
)

// segmentSchema is the first schema that keeps imports as segments
// (migration 0007). Parts an older pilotwire imported are rows with their
// file and part, read and replaced like live rows.
const segmentSchema = 7

// putSegment replaces part of file with flows, kept as one segment (see
// package segment) with its activity, in tx. IDs come from next, which it
// moves on; a part imported again with as many flows keeps its IDs.
// It returns how many flows the part held before.
func putSegment(ctx context.Context, tx pgx.Tx, file string, part int, flows []flow.Flow, next *int64) (old int64, err error) {
	var oldFirst int64
	var oldN int
	err = tx.QueryRow(ctx, `DELETE FROM segments WHERE file = $1 AND part = $2 RETURNING first_id, n`, file, part).Scan(&oldFirst, &oldN)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	if len(flows) == 0 {
		return int64(oldN), nil
	}
	first := *next
	if oldN == len(flows) {
		first = oldFirst
	} else {
		*next += int64(len(flows))
	}
	blob, startMin, startMax := segment.Encode(flows)
	source := flows[0].Source
	var sum flow.ActivitySum
	for i := range flows {
		if flows[i].Source != source {
			source = ""
		}
		g := flows[i]
		g.ID = first + int64(i)
		sum.Add(&g)
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO segments (file, part, first_id, n, start_min, start_max, source, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		file, part, first, len(flows), startMin, startMax, string(source), blob).Scan(&id); err != nil {
		return 0, fmt.Errorf("segment: %w", err)
	}
	cols := newActivityColumns(sum.Activity())
	if _, err := tx.Exec(ctx, `INSERT INTO segment_activity (segment_id, `+activityColumns+`)
		SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::integer[], $8::bigint[],
			$9::integer[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::bigint[])`,
		append([]any{id}, cols.args()...)...); err != nil {
		return 0, fmt.Errorf("segment activity: %w", err)
	}
	return int64(oldN), nil
}

// segmentsFor lists the segments that may hold flows f selects, in the
// order segment.Read takes them; none on a store older than segments.
func (s *DB) segmentsFor(ctx context.Context, tx pgx.Tx, f flow.Filter) ([]segment.Info, error) {
	if s.version < segmentSchema {
		return nil, nil
	}
	var q query
	for _, c := range segment.Where(f) {
		q.add(c.SQL, c.Args...)
	}
	rows, err := tx.Query(ctx, `SELECT id, first_id, n, start_min, start_max, source FROM segments`+q.where()+segment.Order(f.Newest), q.args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (segment.Info, error) {
		var i segment.Info
		var source string
		err := r.Scan(&i.ID, &i.FirstID, &i.N, &i.StartMin, &i.StartMax, &source)
		i.Source = flow.Source(source)
		return i, err
	})
}

// segmentBlobs is the segment.Blobs of a read in tx.
func segmentBlobs(ctx context.Context, tx pgx.Tx) segment.Blobs {
	return func(seg segment.Info, fn func(blob []byte) error) error {
		var blob []byte
		if err := tx.QueryRow(ctx, `SELECT data FROM segments WHERE id = $1`, seg.ID).Scan(&blob); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("segment %d vanished", seg.ID)
			}
			return err
		}
		return fn(blob)
	}
}

// countSegmentFlows counts the flows of the segments f selects (see
// segment.Count).
func (s *DB) countSegmentFlows(ctx context.Context, tx pgx.Tx, f flow.Filter) (int64, error) {
	segs, err := s.segmentsFor(ctx, tx, f)
	if err != nil {
		return 0, err
	}
	return segment.Count(ctx, f, segs, segmentBlobs(ctx, tx))
}

// activityArrays are activity rows as the arrays of an unnest.
type activityArrays struct {
	proxies, clients, sessions, devices []string
	wins, firsts, lasts, flows, bytes   []int64
	lost                                []int64
	firstTZs, lastTZs                   []int32
	deviceAt                            []*int64
}

func newActivityColumns(acts []flow.Activity) *activityArrays {
	c := &activityArrays{}
	for i := range acts {
		c.add(&acts[i])
	}
	return c
}

func (c *activityArrays) add(a *flow.Activity) {
	_, ftz := a.First.Zone()
	_, ltz := a.Last.Zone()
	c.proxies, c.clients, c.sessions, c.wins = append(c.proxies, a.Proxy), append(c.clients, a.Client), append(c.sessions, a.Session), append(c.wins, a.Window)
	c.firsts, c.firstTZs = append(c.firsts, a.First.UnixNano()), append(c.firstTZs, int32(ftz))
	c.lasts, c.lastTZs = append(c.lasts, a.Last.UnixNano()), append(c.lastTZs, int32(ltz))
	c.flows, c.bytes, c.lost, c.devices = append(c.flows, a.Flows), append(c.bytes, a.Bytes), append(c.lost, a.Lost), append(c.devices, a.Device)
	var at *int64
	if a.Device != "" {
		ns := a.DeviceAt.UnixNano()
		at = &ns
	}
	c.deviceAt = append(c.deviceAt, at)
}

// args are the arrays in activityColumns' order.
func (c *activityArrays) args() []any {
	return []any{c.proxies, c.clients, c.sessions, c.wins, c.firsts, c.firstTZs, c.lasts, c.lastTZs, c.flows, c.bytes, c.lost, c.devices, c.deviceAt}
}

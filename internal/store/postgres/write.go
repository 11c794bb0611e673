package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/segment"
)

// takeIDs locks the ID counter's row for the rest of tx, so writers take
// turns, and returns the next ID.
func takeIDs(ctx context.Context, tx pgx.Tx) (int64, error) {
	var next int64
	err := tx.QueryRow(ctx, `SELECT value FROM counters WHERE name = 'next_flow_id' FOR UPDATE`).Scan(&next)
	return next, err
}

func giveIDs(ctx context.Context, tx pgx.Tx, next int64) error {
	_, err := tx.Exec(ctx, `UPDATE counters SET value = $1 WHERE name = 'next_flow_id'`, next)
	return err
}

// PutFlows writes flows in one transaction: new keys with COPY, stored
// ones replaced in place (keeping their IDs). A key given twice in the
// call is stored in its last form, under one ID.
//
// A batch none of whose keys this DB wrote open is first written as new
// rows alone, without asking which keys are stored (a proxy's new flows:
// the question cost an eighth of a batch's time). Should a key be stored
// after all (written by another process, or complete and written again),
// the unique index refuses the batch and it is written the general way.
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
	if s.open.noneOf(flows) {
		err := s.insertNew(ctx, flows)
		if err == nil {
			s.open.note(flows)
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != uniqueViolation {
			return s.wrap("put flows", err)
		}
	}
	if err := s.putFlows(ctx, flows); err != nil {
		return s.wrap("put flows", err)
	}
	s.open.note(flows)
	return nil
}

// insertNew writes flows, whose keys are all new, as new rows.
func (s *DB) insertNew(ctx context.Context, flows []flow.Flow) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		next, err := takeIDs(ctx, tx)
		if err != nil {
			return err
		}
		var act activityChange
		idx := make([]int, len(flows))
		for i := range flows {
			flows[i].ID = next
			next++
			idx[i] = i
			act.add(&flows[i])
		}
		if err := copyRows(ctx, tx, "flows", flows, idx); err != nil {
			return err
		}
		if err := act.apply(ctx, tx); err != nil {
			return err
		}
		return giveIDs(ctx, tx, next)
	})
}

// putFlows writes flows, replacing the stored ones with the same keys.
func (s *DB) putFlows(ctx context.Context, flows []flow.Flow) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		next, err := takeIDs(ctx, tx)
		if err != nil {
			return err
		}
		last := make(map[string]int, len(flows))
		keys := make([]string, 0, len(flows))
		for i := range flows {
			if _, ok := last[flows[i].Key]; !ok {
				keys = append(keys, flows[i].Key)
			}
			last[flows[i].Key] = i
		}
		ids := make(map[string]int64, len(keys))
		// Rows replaced leave their windows, which are summed again.
		var act activityChange
		rows, err := tx.Query(ctx, `SELECT key, id, proxy, client, session, kind, device, start_ns, start_tz, end_ns,
			bytes_up + bytes_down, lost FROM flows WHERE file IS NULL AND key = ANY($1)`, keys)
		if err != nil {
			return err
		}
		var fresh, replace []int
		stored := map[string]storedRow{}
		for rows.Next() {
			var k string
			var id int64
			var r storedRow
			if err := rows.Scan(&k, &id, &r.proxy, &r.client, &r.session, &r.kind, &r.device, &r.startNS, &r.startTZ, &r.endNS,
				&r.bytes, &r.lost); err != nil {
				rows.Close()
				return err
			}
			ids[k], stored[k] = id, r
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, k := range keys {
			if old, ok := stored[k]; ok {
				replace = append(replace, last[k])
				act.replace(old, &flows[last[k]])
				continue
			}
			ids[k] = next
			next++
			fresh = append(fresh, last[k])
		}
		for i := range flows {
			flows[i].ID = ids[flows[i].Key]
		}
		if err := copyRows(ctx, tx, "flows", flows, fresh); err != nil {
			return err
		}
		for _, i := range fresh {
			act.add(&flows[i])
		}
		if len(replace) > 0 {
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS flows_batch (LIKE flows) ON COMMIT DELETE ROWS`); err != nil {
				return err
			}
			if err := copyRows(ctx, tx, "flows_batch", flows, replace); err != nil {
				return err
			}
			set := ""
			for _, c := range columns[1:] {
				set += fmt.Sprintf(", %s = b.%s", c, c)
			}
			if _, err := tx.Exec(ctx, `UPDATE flows f SET `+set[2:]+` FROM flows_batch b WHERE f.id = b.id`); err != nil {
				return err
			}
		}
		if err := act.apply(ctx, tx); err != nil {
			return err
		}
		return giveIDs(ctx, tx, next)
	})
}

// uniqueViolation is PostgreSQL's SQLSTATE for a unique index's refusal.
const uniqueViolation = "23505"

// openKeys is a set of the keys of flows written open (see DB.open),
// safe for concurrent use and bounded: past maxOpenKeys it stops adding,
// and a batch it cannot vouch for is then written the general way.
type openKeys struct {
	mu   sync.Mutex
	keys map[string]struct{}
	full bool
}

const maxOpenKeys = 1 << 20

// noneOf reports whether no key of flows is in the set, none is given
// twice, and the set is not full.
func (o *openKeys) noneOf(flows []flow.Flow) bool {
	seen := make(map[string]struct{}, len(flows))
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.full {
		return false
	}
	for i := range flows {
		k := flows[i].Key
		if _, ok := o.keys[k]; ok {
			return false
		}
		if _, ok := seen[k]; ok {
			return false
		}
		seen[k] = struct{}{}
	}
	return true
}

// note adds the keys of flows written open and takes out those written
// complete.
func (o *openKeys) note(flows []flow.Flow) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.keys == nil {
		o.keys = map[string]struct{}{}
	}
	for i := range flows {
		k := flows[i].Key
		if !flows[i].End.IsZero() {
			delete(o.keys, k)
			continue
		}
		if len(o.keys) >= maxOpenKeys {
			o.full = true
			continue
		}
		o.keys[k] = struct{}{}
	}
}

// PutFileFlows writes part k of an imported file's flows in one
// transaction, replacing the part an earlier import wrote (see
// flow.Store).
func (s *DB) PutFileFlows(ctx context.Context, file string, part int, flows []flow.Flow) (flow.FileChange, error) {
	if s.readOnly {
		return flow.FileChange{}, fmt.Errorf("put file flows %s: %w", file, errReadOnly)
	}
	if err := flow.CheckFilePart(file, part); err != nil {
		return flow.FileChange{}, err
	}
	sourceFile := ""
	if len(flows) > 0 {
		sourceFile = flows[0].SourceFile
	}
	var ch flow.FileChange
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ch = flow.FileChange{}
		next, err := takeIDs(ctx, tx)
		if err != nil {
			return err
		}
		track := `INSERT INTO imports (file, source_file, flows, started_ns) VALUES ($1, $2, $3, $4)
			ON CONFLICT (file) DO UPDATE SET flows = imports.flows + excluded.flows`
		if part == 0 {
			track = `INSERT INTO imports (file, source_file, flows, started_ns) VALUES ($1, $2, $3, $4)
			ON CONFLICT (file) DO UPDATE SET source_file = excluded.source_file, flows = excluded.flows, started_ns = excluded.started_ns`
		}
		if _, err := tx.Exec(ctx, track, file, sourceFile, len(flows), time.Now().UnixNano()); err != nil {
			return err
		}
		oldRows, err := deletePartRows(ctx, tx, file, part, false)
		if err != nil {
			return err
		}
		oldSegment, err := putSegment(ctx, tx, file, part, flows, &next)
		if err != nil {
			return err
		}
		if d := int64(len(flows)) - oldRows - oldSegment; d > 0 {
			ch.Added = d
		} else {
			ch.Dropped = -d
		}
		return giveIDs(ctx, tx, next)
	})
	if err != nil {
		return flow.FileChange{}, s.wrap(fmt.Sprintf("put file flows %s part %d", file, part), err)
	}
	return ch, nil
}

// EndFileFlows deletes file's parts from parts on (none when parts < 0)
// and ends its import.
func (s *DB) EndFileFlows(ctx context.Context, file string, parts int) (flow.FileChange, error) {
	if s.readOnly {
		return flow.FileChange{}, fmt.Errorf("end file flows %s: %w", file, errReadOnly)
	}
	var ch flow.FileChange
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ch = flow.FileChange{}
		if _, err := takeIDs(ctx, tx); err != nil {
			return err
		}
		if parts >= 0 {
			rows, err := deletePartRows(ctx, tx, file, parts, true)
			if err != nil {
				return err
			}
			var segs int64
			if err := tx.QueryRow(ctx, `WITH d AS (DELETE FROM segments WHERE file = $1 AND part >= $2 RETURNING n)
				SELECT coalesce(sum(n), 0)::bigint FROM d`, file, parts).Scan(&segs); err != nil {
				return err
			}
			ch.Dropped = rows + segs
		}
		_, err := tx.Exec(ctx, `DELETE FROM imports WHERE file = $1`, file)
		return err
	})
	if err != nil {
		return flow.FileChange{}, s.wrap("end file flows "+file, err)
	}
	return ch, nil
}

// UnfinishedImports lists the imports begun and not ended, oldest first.
func (s *DB) UnfinishedImports(ctx context.Context) ([]flow.UnfinishedImport, error) {
	rows, err := s.pool.Query(ctx, `SELECT file, source_file, flows, started_ns FROM imports ORDER BY started_ns, file`)
	if err != nil {
		return nil, s.wrap("list unfinished imports", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (flow.UnfinishedImport, error) {
		var u flow.UnfinishedImport
		var ns int64
		err := r.Scan(&u.File, &u.SourceFile, &u.Flows, &ns)
		u.Started = time.Unix(0, ns)
		return u, err
	})
	if err != nil {
		return nil, s.wrap("list unfinished imports", err)
	}
	return out, nil
}

// LearnPassThrough adds p to the learned pass-through list; a host
// already listed keeps its first entry.
func (s *DB) LearnPassThrough(ctx context.Context, p flow.PassThrough) error {
	if s.readOnly {
		return fmt.Errorf("learn pass-through: %w", errReadOnly)
	}
	if p.Host == "" {
		return errors.New("learn pass-through: no host")
	}
	_, tz := p.Learned.Zone()
	_, err := s.pool.Exec(ctx, `INSERT INTO pass_through (host, reason, learned_ns, learned_tz, client, flow_key)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (host) DO NOTHING`,
		p.Host, p.Reason, p.Learned.UnixNano(), int32(tz), p.Client, p.Flow)
	if err != nil {
		return s.wrap("learn pass-through", err)
	}
	return nil
}

// PassThroughs returns the learned pass-through list, ordered by host.
func (s *DB) PassThroughs(ctx context.Context) ([]flow.PassThrough, error) {
	rows, err := s.pool.Query(ctx, `SELECT host, reason, learned_ns, learned_tz, client, flow_key FROM pass_through ORDER BY host`)
	if err != nil {
		return nil, s.wrap("list pass-through", err)
	}
	zones := segment.Zones{}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (flow.PassThrough, error) {
		var p flow.PassThrough
		var ns int64
		var tz int32
		err := r.Scan(&p.Host, &p.Reason, &ns, &tz, &p.Client, &p.Flow)
		p.Learned = time.Unix(0, ns).In(zones.Get(int64(tz)))
		return p, err
	})
	if err != nil {
		return nil, s.wrap("list pass-through", err)
	}
	return out, nil
}

// deletePartRows deletes the rows of part of file (of every part from it
// on, when onwards): parts an import before segments wrote as rows. Their
// windows of activity are summed again. It returns how many it deleted.
func deletePartRows(ctx context.Context, tx pgx.Tx, file string, part int, onwards bool) (int64, error) {
	op := "="
	if onwards {
		op = ">="
	}
	rows, err := tx.Query(ctx, `DELETE FROM flows WHERE file = $1 AND part `+op+` $2 RETURNING proxy, client, session, start_ns`, file, part)
	if err != nil {
		return 0, err
	}
	var act activityChange
	var n int64
	for rows.Next() {
		var proxy, client, session string
		var start int64
		if err := rows.Scan(&proxy, &client, &session, &start); err != nil {
			rows.Close()
			return 0, err
		}
		n++
		act.touch(windowOf(proxy, client, session, start))
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	return n, act.apply(ctx, tx)
}

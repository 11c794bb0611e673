package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// PutFileFlows stores one part of an imported file as one segment (see
// segment.go). The first part of a file also deletes the rows an import
// made before segments existed (their keys start with the file's identity
// and a slash), so importing such a file again replaces it too.
func (s *DB) PutFileFlows(ctx context.Context, file string, part int, flows []flow.Flow) error {
	if file == "" {
		return errors.New("put file flows: no file identity")
	}
	if part < 0 {
		return fmt.Errorf("put file flows %s: part %d", file, part)
	}
	// Encoded before the transaction, so the write lock is held only for
	// the write itself.
	blob, startMin, startMax := encodeSegment(flows)
	source := ""
	if len(flows) > 0 {
		source = string(flows[0].Source)
		for i := range flows {
			if string(flows[i].Source) != source {
				source = ""
				break
			}
		}
	}
	err := s.withRaw(ctx, func(c *rawConn) error {
		return c.putSegment(ctx, file, part, len(flows), source, blob, startMin, startMax)
	}, nil)
	if err != nil {
		return fmt.Errorf("put file flows %s part %d: %w", file, part, err)
	}
	return nil
}

func (c *rawConn) putSegment(ctx context.Context, file string, part, n int, source string, blob []byte, startMin, startMax int64) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
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
	if part == 0 {
		// "0" follows "/": the range holds exactly the keys file + "/…".
		if err := c.run(`DELETE FROM flows WHERE key >= ? AND key < ?`, []any{file + "/", file + "0"}, nil); err != nil {
			return err
		}
	}
	if n == 0 {
		if err := c.run(`DELETE FROM segments WHERE file = ? AND part = ?`, []any{file, part}, nil); err != nil {
			return err
		}
		return c.exec("COMMIT")
	}
	var firstID, oldN int64
	if err := c.run(`SELECT first_id, n FROM segments WHERE file = ? AND part = ?`, []any{file, part}, func(st uintptr) error {
		firstID, oldN = c.columnInt(st, 0), c.columnInt(st, 1)
		return nil
	}); err != nil {
		return err
	}
	if oldN != int64(n) {
		if firstID, err = c.nextID(); err != nil {
			return err
		}
		if err := c.setNextID(firstID + int64(n)); err != nil {
			return err
		}
	}
	if err := c.run(`INSERT INTO segments (file, part, first_id, n, start_min, start_max, source, data) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT (file, part) DO UPDATE SET first_id = excluded.first_id, n = excluded.n, start_min = excluded.start_min,
			start_max = excluded.start_max, source = excluded.source, data = excluded.data`,
		[]any{file, part, firstID, n, startMin, startMax, source, blob}, nil); err != nil {
		return err
	}
	return c.exec("COMMIT")
}

// EndFileFlows deletes the segments of file from part parts on.
func (s *DB) EndFileFlows(ctx context.Context, file string, parts int) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM segments WHERE file = ? AND part >= ?`, file, parts); err != nil {
		return fmt.Errorf("end file flows %s: %w", file, err)
	}
	return nil
}

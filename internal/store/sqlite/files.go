package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/segment"
	lib "modernc.org/sqlite/lib"
)

// PutFileFlows stores one part of an imported file as one segment (see
// package segment), and counts the file's flows so far in the imports table
// (part 0 starts the count). The first part of a file also deletes the
// rows an import made before segments existed (their keys start with the
// file's identity and a slash), so importing such a file again replaces
// it too; they count as dropped.
func (s *DB) PutFileFlows(ctx context.Context, file string, part int, flows []flow.Flow) (flow.FileChange, error) {
	if s.readOnly {
		return flow.FileChange{}, fmt.Errorf("put file flows %s: %w", file, errReadOnly)
	}
	if err := flow.CheckFilePart(file, part); err != nil {
		return flow.FileChange{}, err
	}
	// Encoded before the transaction, so the write lock is held only for
	// the write itself.
	blob, startMin, startMax := segment.Encode(flows)
	source, sourceFile := "", ""
	if len(flows) > 0 {
		source, sourceFile = string(flows[0].Source), flows[0].SourceFile
		for i := range flows {
			if string(flows[i].Source) != source {
				source = ""
				break
			}
		}
	}
	acts := flow.ActivityOf(flows)
	var ch flow.FileChange
	err := s.withRaw(ctx, func(c *rawConn) error {
		var err error
		ch, err = c.putSegment(ctx, segmentWrite{file: file, part: part, n: len(flows), source: source, sourceFile: sourceFile,
			blob: blob, startMin: startMin, startMax: startMax, activity: acts})
		return err
	}, nil)
	if err != nil {
		return flow.FileChange{}, fmt.Errorf("put file flows %s part %d: %w", file, part, err)
	}
	return ch, nil
}

// segmentWrite is one part of a file, encoded (see PutFileFlows).
type segmentWrite struct {
	file, source, sourceFile string
	part, n                  int
	blob                     []byte
	startMin, startMax       int64
	activity                 []flow.Activity // of its flows (flow.ActivityOf)
}

// The imports table's row of a file: part 0 starts it, later parts add.
const (
	importBegin = `INSERT INTO imports (file, source_file, flows, started_ns) VALUES (?,?,?,?)
		ON CONFLICT (file) DO UPDATE SET source_file = excluded.source_file, flows = excluded.flows, started_ns = excluded.started_ns`
	importMore = `INSERT INTO imports (file, source_file, flows, started_ns) VALUES (?,?,?,?)
		ON CONFLICT (file) DO UPDATE SET flows = flows + excluded.flows`
)

func (c *rawConn) putSegment(ctx context.Context, w segmentWrite) (ch flow.FileChange, err error) {
	file, part, n := w.file, w.part, w.n
	if err := ctx.Err(); err != nil {
		return ch, err
	}
	if err := c.useCache(writeCacheKiB); err != nil {
		return ch, err
	}
	if err := c.exec("BEGIN IMMEDIATE"); err != nil {
		return ch, err
	}
	defer func() {
		if err != nil {
			c.exec("ROLLBACK")
		}
	}()
	track, started := importMore, int64(0)
	if part == 0 {
		// "0" follows "/": the range holds exactly the keys file + "/…".
		if err := c.run(`DELETE FROM flows WHERE key >= ? AND key < ?`, []any{file + "/", file + "0"}, nil); err != nil {
			return ch, err
		}
		ch.Dropped = lib.Xsqlite3_changes64(c.tls, c.db)
		track, started = importBegin, time.Now().UnixNano()
	}
	if err := c.run(track, []any{file, w.sourceFile, n, started}, nil); err != nil {
		return ch, err
	}
	var firstID, oldN int64
	if err := c.run(`SELECT first_id, n FROM segments WHERE file = ? AND part = ?`, []any{file, part}, func(st uintptr) error {
		firstID, oldN = c.columnInt(st, 0), c.columnInt(st, 1)
		return nil
	}); err != nil {
		return ch, err
	}
	if d := int64(n) - oldN; d > 0 {
		ch.Added += d
	} else {
		ch.Dropped -= d
	}
	if n == 0 {
		if err := c.run(`DELETE FROM segments WHERE file = ? AND part = ?`, []any{file, part}, nil); err != nil {
			return ch, err
		}
		return ch, c.exec("COMMIT")
	}
	if oldN != int64(n) {
		if firstID, err = c.nextID(); err != nil {
			return ch, err
		}
		if err := c.setNextID(firstID + int64(n)); err != nil {
			return ch, err
		}
	}
	if err := c.run(`INSERT INTO segments (file, part, first_id, n, start_min, start_max, source, data) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT (file, part) DO UPDATE SET first_id = excluded.first_id, n = excluded.n, start_min = excluded.start_min,
			start_max = excluded.start_max, source = excluded.source, data = excluded.data`,
		[]any{file, part, firstID, n, w.startMin, w.startMax, w.source, w.blob}, nil); err != nil {
		return ch, err
	}
	// A replaced segment keeps its id; a trigger deleted its old activity.
	var id int64
	if err := c.run(`SELECT id FROM segments WHERE file = ? AND part = ?`, []any{file, part}, func(st uintptr) error {
		id = c.columnInt(st, 0)
		return nil
	}); err != nil {
		return ch, err
	}
	if err := c.insertSegmentActivity(id, w.activity); err != nil {
		return ch, err
	}
	return ch, c.exec("COMMIT")
}

// EndFileFlows deletes the segments of file from part parts on (none when
// parts < 0) and its row of the imports table, in one transaction.
func (s *DB) EndFileFlows(ctx context.Context, file string, parts int) (flow.FileChange, error) {
	if s.readOnly {
		return flow.FileChange{}, fmt.Errorf("end file flows %s: %w", file, errReadOnly)
	}
	var ch flow.FileChange
	err := s.withRaw(ctx, func(c *rawConn) (err error) {
		if err := c.exec("BEGIN IMMEDIATE"); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				c.exec("ROLLBACK")
			}
		}()
		if parts >= 0 {
			if err := c.run(`SELECT COALESCE(SUM(n), 0) FROM segments WHERE file = ? AND part >= ?`, []any{file, parts}, func(st uintptr) error {
				ch.Dropped = c.columnInt(st, 0)
				return nil
			}); err != nil {
				return err
			}
			if err := c.run(`DELETE FROM segments WHERE file = ? AND part >= ?`, []any{file, parts}, nil); err != nil {
				return err
			}
		}
		if err := c.run(`DELETE FROM imports WHERE file = ?`, []any{file}, nil); err != nil {
			return err
		}
		return c.exec("COMMIT")
	}, nil)
	if err != nil {
		return flow.FileChange{}, fmt.Errorf("end file flows %s: %w", file, err)
	}
	return ch, nil
}

// UnfinishedImports lists the imports table, oldest first.
func (s *DB) UnfinishedImports(ctx context.Context) ([]flow.UnfinishedImport, error) {
	var out []flow.UnfinishedImport
	err := s.withRaw(ctx, func(c *rawConn) error {
		out = out[:0]
		return c.run(`SELECT file, source_file, flows, started_ns FROM imports ORDER BY started_ns, file`, nil, func(st uintptr) error {
			out = append(out, flow.UnfinishedImport{File: strings.Clone(c.columnView(st, 0)), SourceFile: strings.Clone(c.columnView(st, 1)),
				Flows: c.columnInt(st, 2), Started: time.Unix(0, c.columnInt(st, 3))})
			return nil
		})
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("list unfinished imports: %w", err)
	}
	return out, nil
}

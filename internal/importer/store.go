package importer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// DefaultBatch is how many flows Import writes per transaction.
const DefaultBatch = 5000

// Stored is what Import adds to a Result.
type Stored struct {
	Result
	// New counts the flows the store holds after the import and did not
	// hold before (the rest replaced flows of an earlier import of the same
	// file); Dropped, when a file imported again gave fewer flows than
	// before, how many fewer. Both come from what the store counted in its
	// write transactions (flow.FileChange), so two imports of one file at
	// once add its flows once between them.
	New, Dropped int64
}

// Import reads the file at path into st: flows are written in parts of
// batch flows (DefaultBatch when batch ≤ 0) with st.PutFileFlows, one
// transaction each, by a second goroutine so that reading and writing
// overlap. Re-importing a file replaces its flows instead of adding them
// again (see File identity): part by part, and once the file has been read
// to its end, EndFileFlows drops what an earlier import left beyond.
//
// With opt.Strict the file is read through once before anything is stored,
// and a file that cannot be read whole stores nothing (see Options.Strict).
//
// A file read only up to damage (StoppedAt) is ended without dropping
// anything, so its import does not stay listed as unfinished.
func Import(ctx context.Context, st flow.Store, path string, opt Options, batch int) (Stored, error) {
	if batch <= 0 {
		batch = DefaultBatch
	}
	o, res, err := openFile(path, opt)
	if err != nil {
		return Stored{Result: res}, err
	}
	defer o.f.Close()
	out := Stored{Result: res}
	if opt.Strict {
		// Strict: read the whole file once before storing anything, so a
		// damaged file leaves the store as it was. It costs a second read;
		// the other way, rolling back stored parts, would also drop an
		// earlier import of the same file.
		checked, err := o.read(ctx, opt, func(flow.Flow) error { return nil })
		if err != nil {
			out.Result = checked
			if errors.Is(err, ErrDamaged) {
				return out, fmt.Errorf("%w; nothing stored", err)
			}
			return out, err
		}
		if _, err := o.f.Seek(0, io.SeekStart); err != nil {
			return out, fmt.Errorf("import %s: %w", path, err)
		}
	}
	ident := res.Identity

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []flow.Flow, 2)
	writeErr := make(chan error, 1)
	parts, stored := 0, 0
	var change flow.FileChange // written by the writer until writeErr
	go func() {
		var err error
		for b := range batches {
			if err == nil {
				var ch flow.FileChange
				if ch, err = st.PutFileFlows(ctx, ident, parts, b); err != nil {
					cancel() // stop the reader
				}
				change.Added += ch.Added
				change.Dropped += ch.Dropped
				parts++
				stored += len(b)
			}
		}
		writeErr <- err
	}()
	var errWrite = errors.New("store write failed")
	cur := make([]flow.Flow, 0, batch)
	res, err = o.read(ctx, opt, func(f flow.Flow) error {
		cur = append(cur, f)
		if len(cur) == batch {
			select {
			case batches <- cur:
			case <-ctx.Done():
				return errWrite
			}
			cur = make([]flow.Flow, 0, batch)
		}
		return nil
	})
	if len(cur) > 0 && err == nil {
		batches <- cur
	}
	close(batches)
	if werr := <-writeErr; werr != nil {
		return Stored{Result: res}, fmt.Errorf("import %s: %w", path, werr)
	}
	out.Result = res
	// A part may be replaced by one of another size (a different batch);
	// what the import did to the file's flows is the balance.
	balance := func() {
		if d := change.Added - change.Dropped; d >= 0 {
			out.New, out.Dropped = d, 0
		} else {
			out.New, out.Dropped = 0, -d
		}
	}
	balance()
	if errors.Is(err, ErrDamaged) {
		// The check above read the file whole: it changed since.
		return out, fmt.Errorf("%w; the file changed while it was imported: %d flows of it are stored, import it again", err, stored)
	}
	if err != nil {
		return out, err
	}
	// Only a file read to its end may drop what an earlier import of it
	// stored beyond the parts written now.
	end := parts
	if res.StoppedAt != "" {
		end = -1
	}
	ch, err := st.EndFileFlows(ctx, ident, end)
	if err != nil {
		return out, fmt.Errorf("import %s: %w", path, err)
	}
	change.Dropped += ch.Dropped
	balance()
	return out, nil
}

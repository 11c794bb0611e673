package flow

import (
	"context"
	"fmt"
)

// CopyStats says what Copy did.
type CopyStats struct {
	Flows       int64 // flows written to the destination
	PassThrough int   // hosts of the learned pass-through list copied
}

// copyBatch is how many flows Copy writes in one transaction.
const copyBatch = 10000

// Copy writes every flow of src into dst, in src's order (by start, then
// ID, so that flows with the same start keep their order under dst's new
// IDs), and the learned pass-through list when both keep one. Flows go in
// by Key, as live flows: copying again replaces what the first copy
// wrote rather than adding to it. An imported file's flows lose the file
// and part they were written under, so importing that file into dst
// afterwards adds its flows a second time. progress, when not nil, is
// called after each batch with the flows copied so far.
func Copy(ctx context.Context, dst, src Store, progress func(copied int64)) (CopyStats, error) {
	var st CopyStats
	batch := make([]Flow, 0, copyBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := dst.PutFlows(ctx, batch); err != nil {
			return fmt.Errorf("write flows %d–%d: %w", st.Flows+1, st.Flows+int64(len(batch)), err)
		}
		st.Flows += int64(len(batch))
		batch = batch[:0]
		if progress != nil {
			progress(st.Flows)
		}
		return nil
	}
	err := src.Flows(ctx, Filter{Fields: FieldsAll}, func(f Flow) error {
		f.ID = 0
		batch = append(batch, f)
		if len(batch) == copyBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return st, err
	}
	from, ok1 := src.(PassThroughStore)
	to, ok2 := dst.(PassThroughStore)
	if !ok1 || !ok2 {
		return st, nil
	}
	list, err := from.PassThroughs(ctx)
	if err != nil {
		return st, err
	}
	for _, p := range list {
		if err := to.LearnPassThrough(ctx, p); err != nil {
			return st, fmt.Errorf("pass-through list: %w", err)
		}
		st.PassThrough++
	}
	return st, nil
}

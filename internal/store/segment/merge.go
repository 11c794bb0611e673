package segment

import (
	"container/heap"
	"context"
	"fmt"
	"slices"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Rows are a store's selected rows, in the read's order (start, then ID;
// the reverse for a Newest read).
type Rows interface {
	// Current is the row the rows are at; nil after the last.
	Current() *flow.Flow
	// Next moves to the next row.
	Next() error
}

// Blobs calls fn with the blob of the segment seg, which may be valid only
// during the call.
type Blobs func(seg Info, fn func(blob []byte) error) error

// Read gives fn the flows of rows and of the segments segs (those that
// may hold flows f selects, smallest start first, or largest first for a
// Newest read: see Info) merged in the read's order, at most f.Limit. The
// rows must already be the ones f selects; segment flows are kept by opts
// (FilterOpts(f), with the read's Interner and Zones). A segment is
// decoded only when the merge reaches its first start, so a read holds
// the segments whose time ranges overlap the flow it is at: one or two
// for a log read after another, more when several imported captures
// cover the same hours.
func Read(ctx context.Context, f flow.Filter, rows Rows, segs []Info, blobs Blobs, opts *Opts, fn func(flow.Flow) error) error {
	m := &merge{desc: f.Newest}
	m.segs.m = m
	for n := 0; f.Limit <= 0 || n < f.Limit; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		// Open every segment that may hold a flow at or before the
		// next one to give.
		for len(segs) > 0 {
			if head, _ := m.head(rows); head != nil && !m.mayPrecede(segs[0], head) {
				break
			}
			sc, err := m.openCursor(segs[0], blobs, opts)
			if err != nil {
				return err
			}
			segs = segs[1:]
			if sc != nil {
				heap.Push(&m.segs, sc)
			}
		}
		fl, sc := m.head(rows)
		if fl == nil {
			return nil
		}
		if err := fn(*fl); err != nil {
			return err
		}
		var err error
		if sc == nil {
			err = rows.Next()
		} else {
			err = m.advance(sc)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Load decodes the segment seg into dst[:0] (see Decode).
func Load(blobs Blobs, seg Info, dst []flow.Flow, o *Opts) ([]flow.Flow, error) {
	var flows []flow.Flow
	err := withBlob(blobs, seg, func(blob []byte) error {
		var err error
		flows, err = Decode(blob, seg.FirstID, dst, o)
		return err
	})
	return flows, err
}

// Count counts the flows f selects in segs: a segment wholly selected by
// the number kept beside it (Info.N), only one that f cuts into decoded.
func Count(ctx context.Context, f flow.Filter, segs []Info, blobs Blobs) (int64, error) {
	opts := FilterOpts(f)
	opts.Brief = true
	var n int64
	var flows []flow.Flow
	for i, seg := range segs {
		if i%16 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		if Wholly(f, seg) {
			n += int64(seg.N)
			continue
		}
		var err error
		if flows, err = Load(blobs, seg, flows, &opts); err != nil {
			return 0, err
		}
		n += int64(len(flows))
	}
	return n, nil
}

// withBlob is blobs(seg, fn), its error saying which segment.
func withBlob(blobs Blobs, seg Info, fn func(blob []byte) error) error {
	if err := blobs(seg, fn); err != nil {
		return fmt.Errorf("segment %d (IDs %d–%d): %w", seg.ID, seg.FirstID, seg.FirstID+int64(seg.N)-1, err)
	}
	return nil
}

// openCursor opens a cursor on the flows of seg that opts keep, in the
// read's order, or returns nil when it holds none. Oldest first, the
// cursor decodes one flow at a time from a copy of the blob (about 60 bytes
// a flow); newest first, it decodes the segment whole into a spare slice.
func (m *merge) openCursor(seg Info, blobs Blobs, opts *Opts) (*segCursor, error) {
	sc := &segCursor{}
	if m.desc {
		flows, err := Load(blobs, seg, m.spare(), opts)
		if err != nil {
			return nil, err
		}
		if len(flows) == 0 {
			m.free = append(m.free, flows)
			return nil, nil
		}
		slices.Reverse(flows)
		sc.flows = flows
		return sc, nil
	}
	var ok bool
	err := withBlob(blobs, seg, func(blob []byte) error {
		r, err := Open(append(m.spareBlob(), blob...), seg.FirstID, opts)
		if err != nil {
			return err
		}
		sc.r = r
		ok, err = r.Next(&sc.cur)
		return err
	})
	if err != nil || !ok {
		return nil, err
	}
	return sc, nil
}

// FilterOpts are the decode options of the segment flows f selects:
// Filter.Match, the one definition, which the SQL of rows follows too
// (storetest checks both against it).
func FilterOpts(f flow.Filter) Opts {
	return Opts{Keep: f.Match, KeepURL: f.Text != ""}
}

// merge orders the flows of the row cursor and of the open segments.
type merge struct {
	desc bool
	segs segHeap
	// free holds the slices of segments read to their end, for the next
	// segment to be decoded into; freeBlobs their blobs, for the next to be
	// copied into.
	free      [][]flow.Flow
	freeBlobs [][]byte
}

// spareBlob is an empty slice to copy a blob into.
func (m *merge) spareBlob() []byte {
	if len(m.freeBlobs) == 0 {
		return nil
	}
	b := m.freeBlobs[len(m.freeBlobs)-1]
	m.freeBlobs = m.freeBlobs[:len(m.freeBlobs)-1]
	return b[:0]
}

// spare is a slice to decode a segment into.
func (m *merge) spare() []flow.Flow {
	if len(m.free) == 0 {
		return nil
	}
	s := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	return s
}

// before reports whether a comes before b in the read's order.
func (m *merge) before(a, b *flow.Flow) bool {
	as, bs := a.Start.UnixNano(), b.Start.UnixNano()
	if as != bs {
		return (as < bs) != m.desc
	}
	return (a.ID < b.ID) != m.desc
}

// mayPrecede reports whether seg may hold a flow that comes before f.
func (m *merge) mayPrecede(seg Info, f *flow.Flow) bool {
	if m.desc {
		return seg.StartMax >= f.Start.UnixNano()
	}
	return seg.StartMin <= f.Start.UnixNano()
}

// head is the next flow to give and the segment cursor it is from (nil
// for the rows); fl is nil when there is none.
func (m *merge) head(rows Rows) (fl *flow.Flow, sc *segCursor) {
	fl = rows.Current()
	if len(m.segs.c) > 0 {
		top := m.segs.c[0]
		if fl == nil || m.before(top.current(), fl) {
			return top.current(), top
		}
	}
	return fl, nil
}

// advance moves sc, the cursor at the top of the heap, to its next flow.
func (m *merge) advance(sc *segCursor) error {
	ok, err := sc.advance()
	if err != nil {
		return err
	}
	if ok {
		heap.Fix(&m.segs, 0)
		return nil
	}
	heap.Pop(&m.segs)
	if sc.flows != nil {
		m.free = append(m.free, sc.flows)
	}
	if sc.r != nil {
		m.freeBlobs = append(m.freeBlobs, sc.r.d.b)
	}
	return nil
}

// segCursor walks the selected flows of one segment in the read's order:
// decoded one at a time (r) or all at once (flows).
type segCursor struct {
	r     *Reader
	cur   flow.Flow // r's current flow
	flows []flow.Flow
	i     int
}

func (s *segCursor) current() *flow.Flow {
	if s.r != nil {
		return &s.cur
	}
	return &s.flows[s.i]
}

func (s *segCursor) advance() (bool, error) {
	if s.r != nil {
		return s.r.Next(&s.cur)
	}
	s.i++
	return s.i < len(s.flows), nil
}

// segHeap is a heap of segment cursors by their current flow.
type segHeap struct {
	c []*segCursor
	m *merge
}

func (h *segHeap) Len() int           { return len(h.c) }
func (h *segHeap) Less(i, j int) bool { return h.m.before(h.c[i].current(), h.c[j].current()) }
func (h *segHeap) Swap(i, j int)      { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *segHeap) Push(x any)         { h.c = append(h.c, x.(*segCursor)) }
func (h *segHeap) Pop() any {
	x := h.c[len(h.c)-1]
	h.c[len(h.c)-1] = nil
	h.c = h.c[:len(h.c)-1]
	return x
}

// Wholly reports whether f selects every flow of seg.
func Wholly(f flow.Filter, seg Info) bool {
	return f.Client == "" && f.Proxy == "" && len(f.Hosts) == 0 && f.Text == "" && !f.Problems && f.Before.IsZero() &&
		(f.Source == "" || f.Source == seg.Source) &&
		(f.Since.IsZero() || seg.StartMin >= f.Since.UnixNano()) &&
		(f.Until.IsZero() || seg.StartMax < f.Until.UnixNano()) &&
		f.AfterID < seg.FirstID
}

// Cond is one condition of a query of a segments table (columns
// first_id, n, start_min, start_max, source), with ? for each of Args.
type Cond struct {
	SQL  string
	Args []any
}

// Where are the conditions that keep, of a segments table, the segments
// that may hold flows f selects, judged by what the table holds beside
// each blob.
func Where(f flow.Filter) []Cond {
	var c []Cond
	if f.Source != "" {
		c = append(c, Cond{`source IN ('', ?)`, []any{string(f.Source)}})
	}
	if !f.Since.IsZero() {
		c = append(c, Cond{`start_max >= ?`, []any{f.Since.UnixNano()}})
	}
	if !f.Until.IsZero() {
		c = append(c, Cond{`start_min < ?`, []any{f.Until.UnixNano()}})
	}
	if f.AfterID > 0 {
		c = append(c, Cond{`first_id + n - 1 > ?`, []any{f.AfterID}})
	}
	if !f.Before.IsZero() {
		c = append(c, Cond{`start_min <= ?`, []any{f.Before.Start.UnixNano()}})
	}
	return c
}

// Order is the ORDER BY of a query of a segments table for a read in
// Read's order: smallest start first, largest first when desc.
func Order(desc bool) string {
	if desc {
		return ` ORDER BY start_max DESC, id`
	}
	return ` ORDER BY start_min, id`
}

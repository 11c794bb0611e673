// Package live owns the fan-out of recorded flows to the viewers of the
// live page: the Recorder hands each stored batch to a Hub (Publish), and
// every viewer reads its own bounded queue (Subscribe). A viewer that falls
// behind never slows the proxy or the store: its queue is dropped, it is
// told once that it lagged and from which flow ID to catch up, and it
// reads the rest from the store (flow.Filter.AfterID).
//
// It imports flow only.
package live

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// ErrTooManyViewers is Subscribe's answer past the Hub's limit.
var ErrTooManyViewers = errors.New("too many viewers")

// DefaultQueue is how many flows a viewer's queue holds before it lags.
const DefaultQueue = 4096

// Hub fans batches of stored flows out to subscribers. It is safe for
// concurrent use.
type Hub struct {
	max   int
	queue int

	mu     sync.Mutex
	subs   map[*Sub]struct{}
	lastID int64 // the greatest ID published
}

// NewHub makes a Hub for at most maxViewers subscribers at once, each
// queueing at most queue flows (0: DefaultQueue).
func NewHub(maxViewers, queue int) *Hub {
	if queue <= 0 {
		queue = DefaultQueue
	}
	return &Hub{max: maxViewers, queue: queue, subs: make(map[*Sub]struct{})}
}

// Sub is one viewer's queue.
type Sub struct {
	h      *Hub
	notify chan struct{} // has a value when there is something to take

	mu      sync.Mutex
	pending []flow.Flow
	lagged  bool
	// lagFrom is the greatest ID the viewer had been handed when it
	// lagged: it catches up with flows after it.
	lagFrom   int64
	delivered int64 // the greatest ID handed out
}

// Subscribe adds a viewer. Close it when the viewer goes.
func (h *Hub) Subscribe() (*Sub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.max > 0 && len(h.subs) >= h.max {
		return nil, fmt.Errorf("%w: %d watch already", ErrTooManyViewers, len(h.subs))
	}
	s := &Sub{h: h, notify: make(chan struct{}, 1), delivered: h.lastID}
	h.subs[s] = struct{}{}
	return s, nil
}

// Viewers is how many subscribers there are.
func (h *Hub) Viewers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// LastID is the greatest flow ID published so far.
func (h *Hub) LastID() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastID
}

// Publish hands a stored batch to every subscriber. It never blocks on a
// subscriber: one whose queue would overflow lags instead. The batch is
// copied; the caller may reuse it.
func (h *Hub) Publish(batch []flow.Flow) {
	if len(batch) == 0 {
		return
	}
	h.mu.Lock()
	for i := range batch {
		h.lastID = max(h.lastID, batch[i].ID)
	}
	subs := make([]*Sub, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.push(batch, h.queue)
	}
}

func (s *Sub) push(batch []flow.Flow, limit int) {
	s.mu.Lock()
	switch {
	case s.lagged:
		// Already behind: it catches up from the store.
	case len(s.pending)+len(batch) > limit:
		s.lagged, s.lagFrom = true, s.delivered
		s.pending = nil
	default:
		s.pending = append(s.pending, batch...)
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Ready has a value when Take has something to give.
func (s *Sub) Ready() <-chan struct{} { return s.notify }

// Take returns the flows queued since the last Take, oldest first, or,
// when the viewer lagged, lagged true and the ID to catch up after (with
// flow.Filter.AfterID), once.
func (s *Sub) Take() (flows []flow.Flow, lagged bool, after int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lagged {
		s.lagged, s.pending = false, nil
		return nil, true, s.lagFrom
	}
	flows, s.pending = s.pending, nil
	for i := range flows {
		s.delivered = max(s.delivered, flows[i].ID)
	}
	return flows, false, 0
}

// CaughtUp tells the queue the viewer has read from the store every flow
// up to id, so a later lag catches up from there.
func (s *Sub) CaughtUp(id int64) {
	s.mu.Lock()
	s.delivered = max(s.delivered, id)
	s.mu.Unlock()
}

// Close removes the subscriber.
func (s *Sub) Close() {
	s.h.mu.Lock()
	delete(s.h.subs, s)
	s.h.mu.Unlock()
}

// Follow publishes to h the flows another process stores into st (the
// page of `pilotwire serve` over a store a proxy writes): every interval it
// reads the flows after the greatest ID seen and publishes them, in chunks,
// until ctx ends. Flows updated in place (an open tunnel that closed)
// keep their ID and are not seen again; the page shows them as they
// were first read, until it reloads.
func Follow(ctx context.Context, st flow.Store, h *Hub, interval time.Duration, onErr func(error)) {
	if interval <= 0 {
		interval = time.Second
	}
	const batch = 2000
	var last int64
	// Start from the newest flow: what is there already is the page's to
	// read, not news.
	st.Flows(ctx, flow.Filter{Newest: true, Limit: 1}, func(f flow.Flow) error { last = f.ID; return nil })
	t := time.NewTicker(interval)
	defer t.Stop()
	chunk := make([]flow.Flow, 0, batch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Every flow after the last ID, streamed and published a chunk
		// at a time: a read cut by a limit would come in start order,
		// not ID order, and could skip IDs.
		from := last
		err := st.Flows(ctx, flow.Filter{AfterID: from}, func(f flow.Flow) error {
			last = max(last, f.ID)
			if chunk = append(chunk, f); len(chunk) == batch {
				h.Publish(chunk)
				chunk = chunk[:0]
			}
			return nil
		})
		h.Publish(chunk)
		chunk = chunk[:0]
		if err != nil && onErr != nil && ctx.Err() == nil {
			onErr(err)
		}
	}
}

package flow

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// RecorderOptions tune a Recorder. Zero values take the defaults.
type RecorderOptions struct {
	// FlushInterval is the longest a recorded flow waits before it is
	// written. If zero, 500ms. It bounds what a crash can lose.
	FlushInterval time.Duration
	// MaxBatch makes the Recorder flush early once this many flows wait. If
	// zero, 2000.
	MaxBatch int
	// Publish, if set, is called with every batch after it was stored (and
	// with the IDs the store gave). It must not block for long.
	Publish func([]Flow)
	// Logger receives write errors. If nil, they are discarded (but still
	// counted and returned by Close).
	Logger *slog.Logger
}

// Recorder batches flows into a Store off the caller's path. Record never
// blocks on the store: flows wait in memory until the next flush, so a slow
// disk delays writes but never traffic. A flow recorded again with the same
// Key before it was flushed replaces the waiting one, so an open tunnel that
// closes quickly is written once.
type Recorder struct {
	store Store
	opts  RecorderOptions

	mu      sync.Mutex
	pending []Flow
	spare   []Flow         // the last written batch, reused when nothing kept it
	byKey   map[string]int // index into pending
	failed  error          // first write error, returned by Close
	closed  bool

	kick chan struct{}
	done chan struct{}
	stop chan struct{}

	stats RecorderStats
}

// RecorderStats counts what a Recorder did.
type RecorderStats struct {
	Recorded int64 // calls to Record
	Written  int64 // flows written (after coalescing)
	Batches  int64
	Errors   int64 // failed batch writes
}

// NewRecorder starts a Recorder writing to s. Call Close to flush and stop it.
func NewRecorder(s Store, opts RecorderOptions) *Recorder {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 500 * time.Millisecond
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 2000
	}
	r := &Recorder{
		store: s,
		opts:  opts,
		byKey: make(map[string]int),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		stop:  make(chan struct{}),
	}
	go r.loop()
	return r
}

// Record queues f for writing. It is safe for concurrent use and returns at
// once. Flows recorded after Close are dropped.
func (r *Recorder) Record(f Flow) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.stats.Recorded++
	if i, ok := r.byKey[f.Key]; ok && f.Key != "" {
		r.pending[i] = f
	} else {
		r.byKey[f.Key] = len(r.pending)
		r.pending = append(r.pending, f)
	}
	full := len(r.pending) >= r.opts.MaxBatch
	r.mu.Unlock()
	if full {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Stats returns what the Recorder did so far.
func (r *Recorder) Stats() RecorderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *Recorder) loop() {
	defer close(r.done)
	t := time.NewTicker(r.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.kick:
		case <-r.stop:
			r.flush()
			return
		}
		r.flush()
	}
}

// flush writes what is pending. A failed batch is kept and retried at the
// next flush, so a store that is briefly unavailable loses nothing.
func (r *Recorder) flush() {
	r.mu.Lock()
	batch := r.pending
	r.pending, r.spare = r.spare[:0], nil
	clear(r.byKey)
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	// The write gets its own deadline: the proxy's context may be gone at
	// shutdown, and the last batch must still land.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := r.store.PutFlows(ctx, batch)
	cancel()
	r.mu.Lock()
	if err != nil {
		r.stats.Errors++
		if r.failed == nil {
			r.failed = err
		}
		// Put the batch back in front of what arrived meanwhile, keeping the
		// newer version of any flow recorded again.
		newer := r.pending
		r.pending = batch
		clear(r.byKey)
		for i, f := range r.pending {
			r.byKey[f.Key] = i
		}
		for _, f := range newer {
			if i, ok := r.byKey[f.Key]; ok && f.Key != "" {
				r.pending[i] = f
			} else {
				r.byKey[f.Key] = len(r.pending)
				r.pending = append(r.pending, f)
			}
		}
		r.mu.Unlock()
		if r.opts.Logger != nil {
			r.opts.Logger.Error("storing flows", "flows", len(batch), "err", err)
		}
		return
	}
	r.stats.Written += int64(len(batch))
	r.stats.Batches++
	if r.opts.Publish == nil {
		// Nobody kept the batch: its array holds the next one, so a busy
		// proxy does not grow a new slice from nothing after every flush.
		clear(batch)
		r.spare = batch
	}
	r.mu.Unlock()
	if r.opts.Publish != nil {
		r.opts.Publish(batch)
	}
}

// Close flushes every waiting flow and stops the Recorder. It returns an
// error if a flow could not be written in the end.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) > 0 {
		return errors.Join(errors.New("flows not stored at close"), r.failed)
	}
	return nil
}

package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// DefaultMaxBacklog bounds the flows a Recorder keeps waiting for a store
// that cannot be written: about ten minutes of a busy lab proxy (200 flows a
// second at some 500 bytes each) fit in it.
const DefaultMaxBacklog = 64 << 20

// RecorderOptions tune a Recorder. Zero values take the defaults.
type RecorderOptions struct {
	// FlushInterval is the longest a recorded flow waits before it is
	// written. If zero, 500ms. It bounds what a crash can lose.
	FlushInterval time.Duration
	// MaxBatch makes the Recorder flush early once this many flows wait. If
	// zero, 2000.
	MaxBatch int
	// MaxBacklog bounds, in bytes (an estimate of the flows' size in
	// memory), what may wait while the store cannot be written. Past it the
	// oldest waiting flows are dropped, counted per client, and stored as
	// KindLost flows once the store can be written again. If zero,
	// DefaultMaxBacklog.
	MaxBacklog int64
	// Publish, if set, is called with every batch after it was stored (and
	// with the IDs the store gave). It must not block for long.
	Publish func([]Flow)
	// Logger receives write errors: the moment the store stops taking
	// flows ("NOT RECORDING since …"), a reminder every RemindEvery while it
	// does not, and the moment it takes them again. If nil, they are
	// discarded (but still counted, shown by Health and returned by Close).
	Logger *slog.Logger
	// RemindEvery is how often a failing store is logged again. If zero,
	// 30s.
	RemindEvery time.Duration
	// Spool, when set, takes the waiting flows once the store has failed
	// for SpoolAfter (or their backlog reached MaxBacklog), and at Close,
	// so that a long outage or a restart loses nothing; they are delivered
	// to the store, oldest first, before anything newer, once it takes
	// flows again.
	Spool Spool
	// SpoolAfter is how long the store may fail before waiting flows go to
	// the Spool: a short blip costs no disk writes. If zero, 5s.
	SpoolAfter time.Duration
	// Name, when set, is the name of the pilotwire recording (proxy
	// --name): every flow is stored with it as Flow.Proxy, so that several
	// proxies can share a store without mixing their devices.
	Name string
}

// Spool keeps flows on local disk while the store cannot take them
// (package spool).
type Spool interface {
	// Append keeps flows after every flow kept before.
	Append(flows []Flow) error
	// Held says what the spool holds.
	Held() SpoolHeld
	// Deliver hands the kept flows to put, oldest first, forgetting each
	// part once put took it; it stops at put's first error.
	Deliver(ctx context.Context, put func(context.Context, []Flow) error) error
}

// SpoolHeld is what a Spool holds.
type SpoolHeld struct {
	Flows, Bytes int64
	Oldest       time.Time // when the oldest part was kept; zero when empty
	Damaged      int       // parts found damaged on disk and set aside (their flows lost)
}

// Recorder batches flows into a Store off the caller's path. Record never
// blocks on the store: flows wait in memory until the next flush, so a slow
// disk delays writes but never traffic. A flow recorded again with the same
// Key before it was flushed replaces the waiting one, so an open tunnel that
// closes quickly is written once.
//
// While the store fails (a full disk, a database that went away), flows
// keep waiting, up to MaxBacklog; then the oldest are dropped and counted,
// so a long outage costs bounded memory and its losses are on record.
type Recorder struct {
	store Store
	opts  RecorderOptions

	mu           sync.Mutex
	pending      []Flow
	pendingBytes int64          // flowSize of pending
	flushing     int64          // flowSize of the batch being written
	flushingN    int            // its flows
	spare        []Flow         // the last written batch, reused when nothing kept it
	byKey        map[string]int // index into pending
	failed       error          // first write error, returned by Close
	closed       bool

	// While writes fail: since when, the last error, when it was last
	// logged; and what was dropped, by client, until it is stored.
	failingSince time.Time
	lastErr      error
	lastLogged   time.Time
	lost         map[string]*Flow

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
	Dropped  int64 // flows dropped because the backlog reached MaxBacklog
	Spooled  int64 // flows handed to the Spool
}

// RecorderHealth says whether a Recorder is storing what it records.
type RecorderHealth struct {
	// Recording is false from the first failed write until a write
	// succeeds again.
	Recording bool
	Since     time.Time // when writes started failing; zero while recording
	Err       error     // the last write error; nil while recording
	Waiting   int       // flows waiting to be written, the batch being written included
	Dropped   int64     // flows dropped since the Recorder started
	Spool     SpoolHeld // what the Spool holds; zero without one
}

// String says it in one line for a log or a status page:
// "recording" or "NOT RECORDING since 14:02:11: disk full; 1,457 flows waiting".
func (h RecorderHealth) String() string {
	var b strings.Builder
	if h.Recording {
		b.WriteString("recording")
	} else {
		fmt.Fprintf(&b, "NOT RECORDING since %s: %v; %s flows waiting", h.Since.Format("15:04:05"), h.Err, Thousands(int64(h.Waiting)))
	}
	if h.Spool.Flows > 0 {
		fmt.Fprintf(&b, "; %s flows kept on disk (spool) since %s", Thousands(h.Spool.Flows), h.Spool.Oldest.Format("15:04:05"))
	}
	if h.Dropped > 0 {
		fmt.Fprintf(&b, "; %s flows dropped (backlog full)", Thousands(h.Dropped))
	}
	return b.String()
}

// Thousands writes n with a comma every three digits: 12,345 (-1,234).
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// NewRecorder starts a Recorder writing to s. Call Close to flush and stop it.
func NewRecorder(s Store, opts RecorderOptions) *Recorder {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 500 * time.Millisecond
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 2000
	}
	if opts.MaxBacklog <= 0 {
		opts.MaxBacklog = DefaultMaxBacklog
	}
	if opts.RemindEvery <= 0 {
		opts.RemindEvery = 30 * time.Second
	}
	if opts.SpoolAfter <= 0 {
		opts.SpoolAfter = 5 * time.Second
	}
	r := &Recorder{
		store: s,
		opts:  opts,
		byKey: make(map[string]int),
		lost:  make(map[string]*Flow),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		stop:  make(chan struct{}),
	}
	go r.loop()
	return r
}

// flowSize estimates what f holds in memory: the struct and its strings.
func flowSize(f *Flow) int64 {
	return int64(unsafe.Sizeof(*f)) + int64(len(f.Key)+len(f.Client)+len(f.Device)+len(f.Session)+len(f.SourceFile)+
		len(f.Method)+len(f.Scheme)+len(f.Host)+len(f.URL)+len(f.SNI)+len(f.ALPN)+len(f.TLSVersion)+
		len(f.Error)+len(f.Reason)+len(f.Note))
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
	if r.opts.Name != "" {
		f.Proxy = r.opts.Name
	}
	size := flowSize(&f)
	if i, ok := r.byKey[f.Key]; ok && f.Key != "" {
		r.pendingBytes += size - flowSize(&r.pending[i])
		r.pending[i] = f
	} else {
		r.byKey[f.Key] = len(r.pending)
		r.pending = append(r.pending, f)
		r.pendingBytes += size
	}
	if r.pendingBytes+r.flushing > r.opts.MaxBacklog {
		r.dropOldest()
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

// dropOldest drops the oldest waiting flows until the backlog is back under
// seven eighths of MaxBacklog (so that a full backlog is not trimmed, and
// re-indexed, at every Record), counting them by client. r.mu is held.
func (r *Recorder) dropOldest() {
	target := r.opts.MaxBacklog / 8 * 7
	n := 0
	for n < len(r.pending) && r.pendingBytes+r.flushing > target {
		f := &r.pending[n]
		r.pendingBytes -= flowSize(f)
		r.noteLost(f)
		n++
	}
	if n == 0 {
		return
	}
	r.stats.Dropped += int64(n)
	kept := copy(r.pending, r.pending[n:])
	clear(r.pending[kept:]) // let the dropped flows' strings go
	r.pending = r.pending[:kept]
	clear(r.byKey)
	for i := range r.pending {
		r.byKey[r.pending[i].Key] = i
	}
}

// noteLost counts f as dropped in its client's KindLost record.
func (r *Recorder) noteLost(f *Flow) {
	l := r.lost[f.Client]
	if l == nil {
		l = &Flow{Kind: KindLost, Client: f.Client, Proxy: f.Proxy, Start: f.Start, End: f.Start}
		r.lost[f.Client] = l
	}
	l.Lost++
	if f.Start.Before(l.Start) {
		l.Start = f.Start
	}
	if f.Start.After(l.End) {
		l.End = f.Start
	}
	if f.Device != "" {
		l.Device = f.Device
	}
}

// Stats returns what the Recorder did so far.
func (r *Recorder) Stats() RecorderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Health says whether the Recorder is storing flows, and what waits.
func (r *Recorder) Health() RecorderHealth {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.healthLocked()
}

func (r *Recorder) healthLocked() RecorderHealth {
	h := RecorderHealth{Recording: r.failingSince.IsZero(), Waiting: len(r.pending) + r.flushingN, Dropped: r.stats.Dropped}
	if !h.Recording {
		h.Since, h.Err = r.failingSince, r.lastErr
	}
	if r.opts.Spool != nil {
		h.Spool = r.opts.Spool.Held()
	}
	return h
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
	r.flushing, r.pendingBytes = r.pendingBytes, 0
	r.flushingN = len(batch)
	// What was dropped goes with the first batch that can be written.
	// Drops while it is written count in a new record.
	lostAt, lost := len(batch), r.lost
	r.lost = make(map[string]*Flow)
	for client, l := range lost {
		l.Key = "lost/" + client + "/" + strconv.FormatInt(l.Start.UnixNano(), 10)
		if r.opts.Name != "" {
			// Keys are one namespace in a shared store.
			l.Key = "lost/" + r.opts.Name + "/" + client + "/" + strconv.FormatInt(l.Start.UnixNano(), 10)
		}
		l.Note = "flows dropped before they could be stored: the store could not be written"
		batch = append(batch, *l)
	}
	r.mu.Unlock()
	// What waits on disk is older than anything in memory: it goes first.
	var err error
	if sp := r.opts.Spool; sp != nil && sp.Held().Flows > 0 {
		err = r.deliverSpool(sp)
	}
	if len(batch) == 0 && err == nil {
		return
	}
	if err == nil {
		// The write gets its own deadline: the proxy's context may be
		// gone at shutdown, and the last batch must still land.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = r.store.PutFlows(ctx, batch)
		cancel()
	}
	now := time.Now()
	r.mu.Lock()
	r.flushing, r.flushingN = 0, 0
	if err != nil {
		r.stats.Errors++
		if r.failed == nil {
			r.failed = err
		}
		r.lastErr = err
		first := r.failingSince.IsZero()
		if first {
			r.failingSince = now
		}
		// The lost records go back, with what was dropped meanwhile.
		for client, l := range lost {
			if cur := r.lost[client]; cur != nil {
				l.Lost += cur.Lost
				l.Start, l.End = minTime(l.Start, cur.Start), maxTime(l.End, cur.End)
				if cur.Device != "" {
					l.Device = cur.Device
				}
			}
			r.lost[client] = l
		}
		r.putBack(batch[:lostAt])
		if sp := r.opts.Spool; sp != nil && len(r.pending) > 0 &&
			(r.closed || now.Sub(r.failingSince) >= r.opts.SpoolAfter || r.pendingBytes > r.opts.MaxBacklog) {
			r.spoolPending(sp)
		}
		if r.pendingBytes > r.opts.MaxBacklog {
			r.dropOldest()
		}
		remind := first || now.Sub(r.lastLogged) >= r.opts.RemindEvery
		if remind {
			r.lastLogged = now
		}
		h := r.healthLocked()
		r.mu.Unlock()
		if remind && r.opts.Logger != nil {
			r.opts.Logger.Error(h.String())
		}
		return
	}
	r.stats.Written += int64(lostAt)
	r.stats.Batches++
	recovered := !r.failingSince.IsZero()
	outage := now.Sub(r.failingSince)
	r.failingSince, r.lastErr = time.Time{}, nil
	dropped := r.stats.Dropped
	if r.opts.Publish == nil {
		// Nobody kept the batch: its array holds the next one, so a busy
		// proxy does not grow a new slice from nothing after every flush.
		clear(batch)
		r.spare = batch
	}
	r.mu.Unlock()
	if recovered && r.opts.Logger != nil {
		r.opts.Logger.Warn(fmt.Sprintf("recording again after %s: %s waiting flows stored; %s dropped since start",
			outage.Round(time.Second), Thousands(int64(lostAt)), Thousands(dropped)))
	}
	if r.opts.Publish != nil {
		r.opts.Publish(batch)
	}
}

// putBack puts older flows back in front of what is pending, keeping the
// newer version of any flow recorded again. r.mu is held.
func (r *Recorder) putBack(older []Flow) {
	newer := r.pending
	r.pending = older
	clear(r.byKey)
	r.pendingBytes = 0
	for i := range r.pending {
		r.byKey[r.pending[i].Key] = i
		r.pendingBytes += flowSize(&r.pending[i])
	}
	for _, f := range newer {
		r.pendingBytes += flowSize(&f)
		if i, ok := r.byKey[f.Key]; ok && f.Key != "" {
			r.pendingBytes -= flowSize(&r.pending[i])
			r.pending[i] = f
		} else {
			r.byKey[f.Key] = len(r.pending)
			r.pending = append(r.pending, f)
		}
	}
}

// spoolPending hands what is pending to the spool, off the lock (a disk
// write must not hold up Record); on failure it goes back in front of
// what arrived meanwhile. r.mu is held, and released while it writes.
func (r *Recorder) spoolPending(sp Spool) {
	out := r.pending
	r.pending = nil
	clear(r.byKey)
	r.pendingBytes = 0
	r.mu.Unlock()
	err := sp.Append(out)
	r.mu.Lock()
	if err != nil {
		r.putBack(out)
		r.lastErr = fmt.Errorf("%w; and the spool: %w", r.lastErr, err)
		return
	}
	r.stats.Spooled += int64(len(out))
}

// deliverSpool writes what the spool holds to the store, oldest first,
// publishing each part as a batch would be.
func (r *Recorder) deliverSpool(sp Spool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return sp.Deliver(ctx, func(ctx context.Context, fs []Flow) error {
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := r.store.PutFlows(wctx, fs); err != nil {
			return err
		}
		r.mu.Lock()
		r.stats.Written += int64(len(fs))
		r.stats.Batches++
		r.mu.Unlock()
		if r.opts.Publish != nil {
			r.opts.Publish(fs)
		}
		return nil
	})
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

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

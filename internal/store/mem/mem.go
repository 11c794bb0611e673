// Package mem implements flow.Store in memory: the store a capture file is
// read into by `report`, `sessions`, `flows` and `endpoints observed` given
// a file (and `serve` over capture files: nothing written to disk), and of
// tests that need a store but not a file. It keeps the whole contract of flow.Store, proved by the
// same storetest suite as the SQLite store, so code written against it
// behaves the same on a real store.
//
// It imports only internal/flow.
package mem

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Store is a flow.Store in memory. The zero value is not ready; use New.
type Store struct {
	mu     sync.Mutex
	lastID int64
	byID   map[int64]*flow.Flow
	rows   map[string]int64        // Key → ID of flows written by PutFlows
	files  map[string]map[int]part // file → part number → its flows
	// running are the imports begun and not ended, by file.
	running map[string]*flow.UnfinishedImport
	// order lists every ID by (start, ID); nil when a write has changed
	// it since it was last sorted.
	order  []int64
	closed bool
	// passThrough is the learned pass-through list, by host.
	passThrough map[string]flow.PassThrough
}

// part is one part of an imported file: its flows' IDs in start order.
type part struct{ ids []int64 }

var _ flow.PassThroughStore = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{byID: map[int64]*flow.Flow{}, rows: map[string]int64{}, files: map[string]map[int]part{},
		running: map[string]*flow.UnfinishedImport{}, passThrough: map[string]flow.PassThrough{}}
}

// LearnPassThrough adds p to the learned pass-through list; a host
// already listed keeps its first entry.
func (s *Store) LearnPassThrough(ctx context.Context, p flow.PassThrough) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Host == "" {
		return errors.New("mem store: learn pass-through: no host")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if _, ok := s.passThrough[p.Host]; !ok {
		s.passThrough[p.Host] = p
	}
	return nil
}

// PassThroughs returns the learned pass-through list, ordered by host.
func (s *Store) PassThroughs(ctx context.Context) ([]flow.PassThrough, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	out := make([]flow.PassThrough, 0, len(s.passThrough))
	for _, p := range s.passThrough {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b flow.PassThrough) int { return cmp.Compare(a.Host, b.Host) })
	return out, nil
}

var errClosed = errors.New("mem store: closed")

// PutFlows writes flows; a flow whose Key was written by PutFlows before
// replaces it and keeps its ID.
func (s *Store) PutFlows(ctx context.Context, flows []flow.Flow) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := flow.CheckPut(flows); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	for i, f := range flows {
		if id, ok := s.rows[f.Key]; ok {
			f.ID = id
			flows[i].ID = id
			// A new flow, not the old one overwritten: a read in
			// progress holds the old one (see selected).
			s.byID[id] = &f
			s.order = nil // its start may have changed
			continue
		}
		s.lastID++
		f.ID = s.lastID
		flows[i].ID = f.ID
		s.rows[f.Key] = f.ID
		s.byID[f.ID] = &f
		s.order = nil
	}
	return nil
}

// PutFileFlows writes part k of the flows imported from file, replacing
// the part an earlier import wrote. A part with as many flows as before
// keeps its IDs (given in start order); otherwise its flows get new ones.
// Part 0 (re)starts the file's entry among the unfinished imports.
func (s *Store) PutFileFlows(ctx context.Context, file string, k int, flows []flow.Flow) (flow.FileChange, error) {
	if err := ctx.Err(); err != nil {
		return flow.FileChange{}, err
	}
	if err := flow.CheckFilePart(file, k); err != nil {
		return flow.FileChange{}, err
	}
	sorted := slices.Clone(flows)
	slices.SortStableFunc(sorted, func(a, b flow.Flow) int { return a.Start.Compare(b.Start) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return flow.FileChange{}, errClosed
	}
	run := s.running[file]
	if run == nil || k == 0 {
		run = &flow.UnfinishedImport{File: file, Started: time.Now()}
		if len(flows) > 0 {
			run.SourceFile = flows[0].SourceFile
		}
		s.running[file] = run
	}
	run.Flows += int64(len(flows))
	parts := s.files[file]
	if parts == nil {
		parts = map[int]part{}
		s.files[file] = parts
	}
	old, had := parts[k]
	reuse := had && len(old.ids) == len(sorted)
	if had && !reuse {
		s.drop(old)
	}
	p := part{ids: make([]int64, len(sorted))}
	for i := range sorted {
		f := sorted[i]
		if reuse {
			f.ID = old.ids[i]
		} else {
			s.lastID++
			f.ID = s.lastID
		}
		p.ids[i] = f.ID
		s.byID[f.ID] = &f
	}
	parts[k] = p
	s.order = nil
	if d := int64(len(sorted) - len(old.ids)); d < 0 {
		return flow.FileChange{Dropped: -d}, nil
	} else {
		return flow.FileChange{Added: d}, nil
	}
}

// EndFileFlows drops the parts from parts on (none when parts < 0) that
// an earlier import of file left, and ends the import.
func (s *Store) EndFileFlows(ctx context.Context, file string, parts int) (flow.FileChange, error) {
	if err := ctx.Err(); err != nil {
		return flow.FileChange{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return flow.FileChange{}, errClosed
	}
	var ch flow.FileChange
	for k, p := range s.files[file] {
		if parts >= 0 && k >= parts {
			ch.Dropped += int64(len(p.ids))
			s.drop(p)
			delete(s.files[file], k)
		}
	}
	if len(s.files[file]) == 0 {
		delete(s.files, file)
	}
	delete(s.running, file)
	return ch, nil
}

// UnfinishedImports lists the imports begun and not ended, oldest first.
func (s *Store) UnfinishedImports(ctx context.Context) ([]flow.UnfinishedImport, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	out := make([]flow.UnfinishedImport, 0, len(s.running))
	for _, u := range s.running {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b flow.UnfinishedImport) int {
		return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.File, b.File))
	})
	return out, nil
}

// drop forgets a part's flows. s.mu is held.
func (s *Store) drop(p part) {
	for _, id := range p.ids {
		delete(s.byID, id)
	}
	s.order = nil
}

// sortedIDs returns every ID by (start, ID). s.mu is held.
func (s *Store) sortedIDs() []int64 {
	if s.order == nil {
		s.order = make([]int64, 0, len(s.byID))
		for id := range s.byID {
			s.order = append(s.order, id)
		}
		slices.SortFunc(s.order, func(a, b int64) int {
			if c := s.byID[a].Start.Compare(s.byID[b].Start); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
	}
	return s.order
}

// selected returns the flows f selects, in the order and number it asks
// for. Taking them under the lock makes a read a snapshot, as a
// transaction is, and lets fn write to the store; pointers are enough for
// that because a stored flow is never changed, only replaced, and they
// keep a read of a whole capture file from copying it.
func (s *Store) selected(f flow.Filter) ([]*flow.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	ids := s.sortedIDs()
	var out []*flow.Flow
	take := func(id int64) bool {
		fl := s.byID[id]
		if f.Match(fl) {
			out = append(out, fl)
		}
		return f.Limit <= 0 || len(out) < f.Limit
	}
	if f.Newest {
		for _, id := range slices.Backward(ids) {
			if !take(id) {
				break
			}
		}
	} else {
		for _, id := range ids {
			if !take(id) {
				break
			}
		}
	}
	return out, nil
}

// Flows calls fn for each flow f selects, by start time then ID.
func (s *Store) Flows(ctx context.Context, f flow.Filter, fn func(flow.Flow) error) error {
	out, err := s.selected(f)
	if err != nil {
		return err
	}
	for i, fl := range out {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(*fl); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// CountFlows returns how many flows f selects, ignoring f.Limit.
func (s *Store) CountFlows(ctx context.Context, f flow.Filter) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	var n int64
	for _, fl := range s.byID {
		if f.Match(fl) {
			n++
		}
	}
	return n, nil
}

// Close releases the store's flows; later calls fail.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.byID, s.rows, s.files, s.order = nil, nil, nil, nil
	return nil
}

// Activity sums every flow up (flow.ActivityOf) and calls fn with what f
// selects.
func (s *Store) Activity(ctx context.Context, f flow.Filter, fn func(flow.Activity) error) error {
	// Summed under the lock, in the order a read gives, without copying
	// the flows: a capture file read into this store is summed whole for
	// its sessions, and a copy would double its memory for that moment.
	var acc flow.ActivitySum
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	for _, id := range s.sortedIDs() {
		acc.Add(s.byID[id])
	}
	s.mu.Unlock()
	for _, a := range acc.Activity() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !f.MatchActivity(&a) {
			continue
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

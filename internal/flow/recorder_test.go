package flow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// memStore keeps flows by key; fail makes the next writes fail.
type memStore struct {
	mu      sync.Mutex
	flows   map[string]flow.Flow
	batches int
	fail    int
}

func (m *memStore) PutFlows(_ context.Context, fs []flow.Flow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail > 0 {
		m.fail--
		return errors.New("disk full")
	}
	m.batches++
	for _, f := range fs {
		m.flows[f.Key] = f
	}
	return nil
}
func (m *memStore) Flows(context.Context, flow.Filter, func(flow.Flow) error) error { return nil }
func (m *memStore) CountFlows(context.Context, flow.Filter) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.flows)), nil
}
func (m *memStore) PutFileFlows(context.Context, string, int, []flow.Flow) (flow.FileChange, error) {
	return flow.FileChange{}, errors.New("the recorder wrote file flows")
}
func (m *memStore) EndFileFlows(context.Context, string, int) (flow.FileChange, error) {
	return flow.FileChange{}, errors.New("the recorder ended a file")
}
func (m *memStore) UnfinishedImports(context.Context) ([]flow.UnfinishedImport, error) {
	return nil, nil
}
func (m *memStore) Close() error { return nil }
func (m *memStore) Activity(context.Context, flow.Filter, func(flow.Activity) error) error {
	return nil
}

func TestRecorderCoalescesAndFlushesOnClose(t *testing.T) {
	st := &memStore{flows: map[string]flow.Flow{}}
	var published int
	var pmu sync.Mutex
	r := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: time.Hour, Publish: func(b []flow.Flow) {
		pmu.Lock()
		published += len(b)
		pmu.Unlock()
	}})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				key := fmt.Sprintf("%d-%d", g, i)
				r.Record(flow.Flow{Key: key, Host: "open"})
				r.Record(flow.Flow{Key: key, Host: "done"})
			}
		}()
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if len(st.flows) != 4000 {
		t.Fatalf("stored %d flows, want 4000", len(st.flows))
	}
	for k, f := range st.flows {
		if f.Host != "done" {
			t.Fatalf("flow %s kept its open version", k)
		}
	}
	s := r.Stats()
	if s.Recorded != 8000 || s.Written < 4000 {
		t.Errorf("stats = %+v", s)
	}
	if published != int(s.Written) {
		t.Errorf("published %d, written %d", published, s.Written)
	}
	r.Record(flow.Flow{Key: "late"})
	if _, ok := st.flows["late"]; ok {
		t.Errorf("flow recorded after Close was stored")
	}
}

func TestRecorderFlushesOnInterval(t *testing.T) {
	st := &memStore{flows: map[string]flow.Flow{}}
	r := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: 20 * time.Millisecond})
	defer r.Close()
	r.Record(flow.Flow{Key: "a"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if n, _ := st.CountFlows(context.Background(), flow.Filter{}); n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("flow not written within 5s with a 20ms flush interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRecorderRetriesFailedBatch(t *testing.T) {
	st := &memStore{flows: map[string]flow.Flow{}, fail: 2}
	r := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: 10 * time.Millisecond})
	r.Record(flow.Flow{Key: "a", Host: "old"})
	for deadline := time.Now().Add(5 * time.Second); r.Stats().Errors < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("recorder did not retry within 5s")
		}
	}
	r.Record(flow.Flow{Key: "a", Host: "new"})
	r.Record(flow.Flow{Key: "b"})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if st.flows["a"].Host != "new" || len(st.flows) != 2 {
		t.Errorf("after retries: %+v", st.flows)
	}
	if r.Stats().Errors != 2 {
		t.Errorf("errors = %d, want 2", r.Stats().Errors)
	}
}

// TestRecorderBoundsBacklogWhileStoreFails: a store that cannot be written
// for a long time costs bounded memory; the oldest flows are dropped and
// counted by client, the log says NOT RECORDING, and once the store takes
// writes again every kept flow and a KindLost record per client are stored.
func TestRecorderBoundsBacklogWhileStoreFails(t *testing.T) {
	st := &memStore{flows: map[string]flow.Flow{}, fail: 1 << 30}
	var logged strings.Builder
	var lmu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&lmu, &logged}, nil))
	const maxBacklog = 64 << 10
	r := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: 5 * time.Millisecond, MaxBacklog: maxBacklog, Logger: logger})
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	const n = 5000
	for i := range n {
		client := []string{"10.0.0.1", "10.0.0.2"}[i%2]
		r.Record(flow.Flow{Key: fmt.Sprint(i), Client: client, Host: "login.microsoftonline.com", Start: t0.Add(time.Duration(i) * time.Second)})
		if i%500 == 0 {
			time.Sleep(10 * time.Millisecond) // let failing flushes happen in between
		}
	}
	for deadline := time.Now().Add(5 * time.Second); r.Stats().Errors == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed write within 5s")
		}
	}
	h := r.Health()
	if h.Recording || h.Err == nil || h.Since.IsZero() {
		t.Fatalf("health while failing = %+v", h)
	}
	if h.Dropped == 0 || h.Waiting+int(h.Dropped) != n {
		t.Fatalf("waiting %d + dropped %d, want %d in all and some dropped", h.Waiting, h.Dropped, n)
	}
	// Every flow here has the same size: what waits fits the bound.
	size := int64(unsafe.Sizeof(flow.Flow{})) + int64(len("4999")+len("10.0.0.1")+len("login.microsoftonline.com"))
	if got := int64(h.Waiting) * size; got > maxBacklog {
		t.Errorf("%d flows (%d bytes) wait, bound %d", h.Waiting, got, maxBacklog)
	}
	if want := "NOT RECORDING since " + h.Since.Format("15:04:05") + ": disk full; "; !strings.HasPrefix(h.String(), want) ||
		!strings.Contains(h.String(), "flows dropped (backlog full)") {
		t.Errorf("health line %q", h.String())
	}
	lmu.Lock()
	log := logged.String()
	lmu.Unlock()
	if !strings.Contains(log, "NOT RECORDING since") {
		t.Errorf("log does not say NOT RECORDING:\n%s", log)
	}

	st.mu.Lock()
	st.fail = 0
	st.mu.Unlock()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var kept, lost int64
	lostBy := map[string]flow.Flow{}
	for _, f := range st.flows {
		if f.Kind == flow.KindLost {
			lost += f.Lost
			lostBy[f.Client] = f
			continue
		}
		kept++
	}
	if kept+lost != n || lost != r.Stats().Dropped {
		t.Errorf("stored %d flows and %d lost (dropped %d), want %d in all", kept, lost, r.Stats().Dropped, n)
	}
	for _, c := range []string{"10.0.0.1", "10.0.0.2"} {
		l, ok := lostBy[c]
		if !ok {
			t.Errorf("no lost record for %s", c)
			continue
		}
		// The oldest flows were dropped: the record starts at the client's first flow.
		if first := t0.Add(map[string]time.Duration{"10.0.0.1": 0, "10.0.0.2": time.Second}[c]); !l.Start.Equal(first) {
			t.Errorf("%s: lost from %s, want %s", c, l.Start, first)
		}
	}
	if h := r.Health(); !h.Recording {
		t.Errorf("health after recovery = %+v", h)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

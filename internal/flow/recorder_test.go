package flow_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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
func (m *memStore) Clients(context.Context, flow.Filter) ([]flow.ClientSummary, error) {
	return nil, nil
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

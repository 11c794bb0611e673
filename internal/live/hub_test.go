package live_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

func batch(from, n int) []flow.Flow {
	out := make([]flow.Flow, n)
	for i := range out {
		out[i] = flow.Flow{ID: int64(from + i), Key: fmt.Sprint(from + i), Host: "h.example"}
	}
	return out
}

func TestHubFanOut(t *testing.T) {
	h := live.NewHub(2, 10)
	a, err := h.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(); !errors.Is(err, live.ErrTooManyViewers) {
		t.Fatalf("third viewer of two: %v, want ErrTooManyViewers", err)
	}
	h.Publish(batch(1, 4))
	h.Publish(batch(5, 4))
	<-a.Ready()
	got, lagged, _ := a.Take()
	if lagged || len(got) != 8 || got[0].ID != 1 || got[7].ID != 8 {
		t.Fatalf("a took %d flows (lagged %v), want IDs 1–8", len(got), lagged)
	}
	// b read nothing; three more flows overflow its queue of ten: it lags
	// once, from the last ID it was handed (none: 0), and then queues
	// again.
	h.Publish(batch(9, 3))
	<-b.Ready()
	got, lagged, after := b.Take()
	if !lagged || after != 0 || got != nil {
		t.Fatalf("b: %d flows, lagged %v after %d; want lagged after 0", len(got), lagged, after)
	}
	b.CaughtUp(11) // it read 1–11 from the store
	h.Publish(batch(12, 2))
	<-b.Ready()
	if got, lagged, _ := b.Take(); lagged || len(got) != 2 || got[0].ID != 12 {
		t.Fatalf("b after catching up: %d flows, lagged %v", len(got), lagged)
	}
	// A viewer that goes frees its place.
	a.Close()
	if _, err := h.Subscribe(); err != nil {
		t.Fatalf("after a viewer left: %v", err)
	}
}

// TestStalledViewer: a viewer that reads nothing while 100,000 flows are
// published never blocks Publish, holds at most its queue, and is told it
// lagged.
func TestStalledViewer(t *testing.T) {
	h := live.NewHub(4, 1000)
	s, err := h.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := batch(1, 100)
		for i := range 1000 {
			for j := range b {
				b[j].ID = int64(i*100 + j + 1)
			}
			h.Publish(b)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a stalled viewer")
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 8<<20 {
		t.Errorf("the heap grew by %d bytes for a stalled viewer", grown)
	}
	if _, lagged, after := s.Take(); !lagged || after != 0 {
		t.Errorf("stalled viewer: lagged %v after %d; want lagged after 0", lagged, after)
	}
	if h.LastID() != 100000 {
		t.Errorf("LastID %d, want 100000", h.LastID())
	}
}

// TestFollow: what a second writer stores in a SQLite file reaches the
// hub of a reader of that file.
func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	w, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.PutFlows(t.Context(), []flow.Flow{{Key: "old", Start: time.Now(), Host: "old.example"}}); err != nil {
		t.Fatal(err)
	}
	r, err := sqlite.OpenReadOnly(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := live.NewHub(1, 10000) // room for every flow: this test is about Follow, not lag
	s, err := h.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go live.Follow(ctx, r, h, 20*time.Millisecond, func(err error) { t.Errorf("follow: %v", err) })
	time.Sleep(100 * time.Millisecond) // Follow has read where the store is
	var want []flow.Flow
	for i := range 5000 {
		want = append(want, flow.Flow{Key: fmt.Sprint("new-", i), Start: time.Now(), Host: "new.example"})
	}
	if err := w.PutFlows(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	seen := 0
	deadline := time.After(10 * time.Second)
	for seen < len(want) {
		select {
		case <-s.Ready():
		case <-deadline:
			t.Fatalf("%d of %d new flows reached the hub", seen, len(want))
		}
		got, lagged, _ := s.Take()
		if lagged {
			t.Fatal("lagged")
		}
		for _, f := range got {
			if f.Host != "new.example" {
				t.Fatalf("Follow published %s, which was there before", f.Key)
			}
		}
		seen += len(got)
	}
	if seen != len(want) {
		t.Errorf("%d flows published, want %d", seen, len(want))
	}
}

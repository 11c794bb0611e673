package mem_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/mem"
	"github.com/pilotwire/pilotwire/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) flow.Store { return mem.New() })
}

// TestReadIsSnapshot: a read gives the flows as they were when it began,
// even when its callback replaces one it has not reached yet (the store
// hands out the stored flows themselves, not copies, so a replacement must
// not overwrite one in place).
func TestReadIsSnapshot(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	defer st.Close()
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	put := func(key, host string, at time.Duration) {
		t.Helper()
		if err := st.PutFlows(ctx, []flow.Flow{{Key: key, Start: t0.Add(at), Client: "10.0.0.23", Host: host}}); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "first.example", 0)
	put("b", "before.example", time.Second)
	var hosts []string
	err := st.Flows(ctx, flow.Filter{}, func(f flow.Flow) error {
		if f.Key == "a" {
			put("b", "after.example", time.Second)
		}
		hosts = append(hosts, f.Host)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(hosts, " "); got != "first.example before.example" {
		t.Errorf("read gave %q, want the flows as they were when it began: first.example before.example", got)
	}
	var now []string
	if err := st.Flows(ctx, flow.Filter{}, func(f flow.Flow) error { now = append(now, f.Host); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(now, " "); got != "first.example after.example" {
		t.Errorf("next read gave %q, want the replacement: first.example after.example", got)
	}
}

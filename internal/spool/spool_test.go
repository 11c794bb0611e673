package spool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/spool"
	"github.com/pilotwire/pilotwire/internal/store/mem"
)

func flows(prefix string, n int) []flow.Flow {
	base := time.Date(2026, 12, 5, 9, 0, 0, 0, time.FixedZone("", 3600))
	out := make([]flow.Flow, n)
	for i := range out {
		out[i] = flow.Flow{Key: fmt.Sprintf("%s-%d", prefix, i), Start: base.Add(time.Duration(i) * time.Millisecond),
			Client: "10.0.0.7", Host: "ztd.dds.microsoft.com", Kind: flow.KindConnect, Proxy: "site-a", Note: "ünïcode\nline"}
	}
	return out
}

// TestSpoolKeepsOrderAcrossRestart: what is appended comes back in order,
// also from a spool opened again (a restart), and is gone once delivered.
func TestSpoolKeepsOrderAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	d, err := spool.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b", "c"} {
		if err := d.Append(flows(p, 3)); err != nil {
			t.Fatal(err)
		}
	}
	if h := d.Held(); h.Flows != 9 || h.Bytes == 0 || h.Oldest.IsZero() {
		t.Fatalf("Held = %+v", h)
	}
	if _, err := spool.Open(dir, 0); err == nil || !strings.Contains(err.Error(), "another pilotwire uses this spool") {
		t.Fatalf("a second Open of a spool in use: %v", err)
	}
	d.Close()
	// A write that never finished is cleared away.
	os.WriteFile(filepath.Join(dir, "0000000000000009-3.jsonl.tmp"), []byte("{"), 0o600)
	d, err = spool.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var got []string
	calls := 0
	put := func(_ context.Context, fs []flow.Flow) error {
		calls++
		if calls == 2 {
			return errors.New("store down")
		}
		for _, f := range fs {
			got = append(got, f.Key)
			if f.Proxy != "site-a" || f.Note != "ünïcode\nline" || f.Start.Format(time.RFC3339Nano) != "2026-12-05T09:00:00+01:00" && f.Key == "a-0" {
				t.Errorf("flow came back as %+v", f)
			}
		}
		return nil
	}
	if err := d.Deliver(context.Background(), put); err == nil || d.Held().Flows != 6 {
		t.Fatalf("Deliver with a failing store: %v, held %+v", err, d.Held())
	}
	if err := d.Deliver(context.Background(), put); err != nil || d.Held().Flows != 0 {
		t.Fatalf("Deliver: %v, held %+v", err, d.Held())
	}
	if want := "a-0 a-1 a-2 b-0 b-1 b-2 c-0 c-1 c-2"; strings.Join(got, " ") != want {
		t.Errorf("delivered %s, want %s", strings.Join(got, " "), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "0000000000000009-3.jsonl.tmp")); err == nil {
		t.Error("the unfinished write is still there")
	}
}

// TestSpoolDamagedAndFull: a file damaged on disk is set aside and
// counted, not delivered half; a full spool refuses more.
func TestSpoolDamagedAndFull(t *testing.T) {
	dir := t.TempDir()
	d, err := spool.Open(dir, 2000)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Append(flows("a", 2)); err != nil {
		t.Fatal(err)
	}
	if err := d.Append(flows("b", 2)); err != nil {
		t.Fatal(err)
	}
	if err := d.Append(flows("c", 20)); !errors.Is(err, spool.ErrFull) {
		t.Fatalf("Append past the bound: %v", err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*-2.jsonl"))
	if len(names) != 2 {
		t.Fatalf("files %v", names)
	}
	os.WriteFile(names[0], []byte("{\"Key\":\"a-0\"}\nnot json\n"), 0o600)
	var got []string
	if err := d.Deliver(context.Background(), func(_ context.Context, fs []flow.Flow) error {
		for _, f := range fs {
			got = append(got, f.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "b-0 b-1" || d.Held().Damaged != 1 {
		t.Errorf("delivered %v, held %+v", got, d.Held())
	}
	if _, err := os.Stat(names[0] + ".damaged"); err != nil {
		t.Errorf("the damaged file was not set aside: %v", err)
	}
}

// failing is a store that refuses writes while down is set.
type failing struct {
	flow.Store
	down atomic.Bool
}

func (f *failing) PutFlows(ctx context.Context, fs []flow.Flow) error {
	if f.down.Load() {
		return errors.New("connection refused")
	}
	return f.Store.PutFlows(ctx, fs)
}

// TestRecorderSpool: while the store is down the Recorder spools its
// flows; a Recorder closed then holds nothing in memory, and the next one
// (a restart) delivers them before its own, each flow in its newest form,
// none lost, none twice, IDs in the order recorded.
func TestRecorderSpool(t *testing.T) {
	dir := t.TempDir()
	st := &failing{Store: mem.New()}
	st.down.Store(true)
	sp, err := spool.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: 5 * time.Millisecond, SpoolAfter: 20 * time.Millisecond, Spool: sp, Name: "site-a"})
	all := flows("f", 3000)
	for i := range all[:1000] {
		open := all[i]
		open.End = time.Time{}
		rec.Record(open) // open, completed below
	}
	deadline := time.Now().Add(10 * time.Second)
	for sp.Held().Flows == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if sp.Held().Flows == 0 {
		t.Fatal("nothing spooled while the store was down")
	}
	for i := range all[:2000] {
		all[i].End = all[i].Start.Add(time.Second)
		rec.Record(all[i])
	}
	if err := rec.Close(); err != nil {
		t.Fatalf("Close with the store down and a spool: %v", err)
	}
	if n, _ := st.CountFlows(context.Background(), flow.Filter{}); n != 0 {
		t.Fatalf("%d flows stored while down", n)
	}
	sp.Close()

	st.down.Store(false)
	sp, err = spool.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.Held().Flows < 2000 {
		t.Fatalf("the spool holds %d flows after a restart", sp.Held().Flows)
	}
	rec = flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: 5 * time.Millisecond, Spool: sp, Name: "site-a"})
	for i := 2000; i < 3000; i++ {
		rec.Record(all[i])
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	var got []flow.Flow
	st.Flows(context.Background(), flow.Filter{}, func(f flow.Flow) error { got = append(got, f); return nil })
	if len(got) != 3000 || sp.Held().Flows != 0 {
		t.Fatalf("%d flows stored, want 3000; the spool holds %d", len(got), sp.Held().Flows)
	}
	for i, f := range got {
		if f.Key != all[i].Key || (i < 2000) == f.End.IsZero() || f.Proxy != "site-a" {
			t.Fatalf("flow %d: %+v, want %s completed", i, f, all[i].Key)
		}
		if i > 0 && f.ID <= got[i-1].ID {
			t.Fatalf("flow %d (%s) has ID %d after %d", i, f.Key, f.ID, got[i-1].ID)
		}
	}
}

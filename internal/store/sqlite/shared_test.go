package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

// The child of TestProcessesOpenNewStore: these say which store to open,
// the flow to write, and the moment to start at.
const (
	envChildStore = "PILOTWIRE_TEST_CHILD_STORE"
	envChildKey   = "PILOTWIRE_TEST_CHILD_KEY"
	envChildAt    = "PILOTWIRE_TEST_CHILD_AT"
)

// TestProcessesOpenNewStore races three processes (this test binary run
// again) opening one new store, each writing a flow, 20 times: the
// usual first minute, proxy in one terminal and import in another. Every
// open must succeed and every flow be stored. Before the migrations ran in
// one BEGIN IMMEDIATE transaction, about one round in eight failed with
// "database is locked" or "table flows already exists".
func TestProcessesOpenNewStore(t *testing.T) {
	if path := os.Getenv(envChildStore); path != "" {
		childOpen(path)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const rounds, procs = 20, 3
	failures := 0
	for r := range rounds {
		path := filepath.Join(t.TempDir(), "pw.db")
		at := time.Now().Add(150 * time.Millisecond).UnixNano()
		var wg sync.WaitGroup
		outs := make([][]byte, procs)
		errs := make([]error, procs)
		for p := range procs {
			cmd := exec.Command(exe, "-test.run=^TestProcessesOpenNewStore$", "-test.count=1")
			cmd.Env = append(os.Environ(), envChildStore+"="+path, envChildKey+"="+fmt.Sprint("r", r, "p", p),
				envChildAt+"="+strconv.FormatInt(at, 10))
			wg.Go(func() { outs[p], errs[p] = cmd.CombinedOutput() })
		}
		wg.Wait()
		for p := range procs {
			if errs[p] != nil {
				failures++
				t.Errorf("round %d, process %d: %v\n%s", r, p, errs[p], outs[p])
			}
		}
		db, err := sqlite.OpenReadOnly(context.Background(), path)
		if err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		n, err := db.CountFlows(context.Background(), flow.Filter{})
		db.Close()
		if err != nil || n != procs {
			t.Errorf("round %d: %d flows stored (%v), want %d", r, n, err, procs)
		}
	}
	t.Logf("%d of %d opens failed", failures, rounds*procs)
}

// childOpen is one racing process: it opens, writes and closes, and says
// what failed on stderr.
func childOpen(path string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	at, _ := strconv.ParseInt(os.Getenv(envChildAt), 10, 64)
	time.Sleep(time.Until(time.Unix(0, at)))
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		fail(err)
	}
	if err := db.PutFlows(ctx, []flow.Flow{{Key: os.Getenv(envChildKey), Start: time.Now(), Host: "child.example"}}); err != nil {
		fail(err)
	}
	if err := db.Close(); err != nil {
		fail(err)
	}
}

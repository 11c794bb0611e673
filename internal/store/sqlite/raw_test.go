package sqlite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

func openTemp(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func put(t *testing.T, db *sqlite.DB, from, n int) {
	t.Helper()
	batch := make([]flow.Flow, 0, n)
	for i := from; i < from+n; i++ {
		batch = append(batch, benchFlow(i))
	}
	if err := db.PutFlows(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, db *sqlite.DB) int64 {
	t.Helper()
	n, err := db.CountFlows(context.Background(), flow.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFlowsOwnTheirStrings checks that flows read earlier keep their
// values after the store has read and written many more: Flows reads text
// in place from SQLite's memory and must hand out copies.
func TestFlowsOwnTheirStrings(t *testing.T) {
	db := openTemp(t)
	put(t, db, 0, 3000)
	var got []flow.Flow
	if err := db.Flows(context.Background(), flow.Filter{}, func(f flow.Flow) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	put(t, db, 3000, 3000)
	if err := db.Flows(context.Background(), flow.Filter{}, func(flow.Flow) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3000 {
		t.Fatalf("read %d flows, want 3000", len(got))
	}
	for i, f := range got {
		want := benchFlow(i)
		want.ID = f.ID
		if !f.Start.Equal(want.Start) || !f.End.Equal(want.End) {
			t.Fatalf("flow %d times %v..%v, want %v..%v", i, f.Start, f.End, want.Start, want.End)
		}
		f.Start, f.End = want.Start, want.End
		if !flow.Same(f, want) {
			t.Fatalf("flow %d changed after later reads and writes:\n got %+v\nwant %+v", i, f, want)
		}
	}
}

func TestFlowsErrors(t *testing.T) {
	db := openTemp(t)
	put(t, db, 0, 5000)
	errStop := errors.New("stop")
	cases := []struct {
		name string
		fn   func(ctx context.Context, cancel func(), n int) error
		want error
	}{
		{"fn error returned as is", func(_ context.Context, _ func(), n int) error {
			if n == 10 {
				return errStop
			}
			return nil
		}, errStop},
		{"context canceled while reading", func(_ context.Context, cancel func(), n int) error {
			if n == 10 {
				cancel()
			}
			return nil
		}, context.Canceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n := 0
			err := db.Flows(ctx, flow.Filter{}, func(flow.Flow) error { n++; return c.fn(ctx, cancel, n) })
			if !errors.Is(err, c.want) {
				t.Fatalf("Flows error = %v, want %v", err, c.want)
			}
			if c.want == errStop && err != errStop {
				t.Errorf("fn's error came back wrapped: %v", err)
			}
			if n >= 5000 {
				t.Errorf("Flows went on to read all %d flows after stopping", n)
			}
			// The store still reads everything afterwards.
			all := 0
			if err := db.Flows(context.Background(), flow.Filter{}, func(flow.Flow) error { all++; return nil }); err != nil || all != 5000 {
				t.Errorf("after the error: read %d flows, %v; want 5000", all, err)
			}
		})
	}
}

func TestPutFlowsCanceledWritesNothing(t *testing.T) {
	db := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	batch := []flow.Flow{benchFlow(1), benchFlow(2)}
	if err := db.PutFlows(ctx, batch); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutFlows with a canceled context = %v, want context.Canceled", err)
	}
	if n := count(t, db); n != 0 {
		t.Fatalf("%d flows stored by a canceled PutFlows", n)
	}
	if err := db.PutFlows(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db); n != 2 {
		t.Fatalf("%d flows stored, want 2", n)
	}
}

// TestConcurrentUse runs writers and readers at once: each raw connection
// is used by one goroutine at a time.
func TestConcurrentUse(t *testing.T) {
	db := openTemp(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Go(func() {
			for b := range 5 {
				batch := make([]flow.Flow, 200)
				for i := range batch {
					batch[i] = benchFlow(w*1000 + b*200 + i)
				}
				if err := db.PutFlows(context.Background(), batch); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for range 5 {
				last := time.Time{}
				err := db.Flows(context.Background(), flow.Filter{}, func(f flow.Flow) error {
					if f.Start.Before(last) {
						return fmt.Errorf("flow %d out of order", f.ID)
					}
					last = f.Start
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := count(t, db); n != 4000 {
		t.Fatalf("%d flows stored, want 4000", n)
	}
}

// killChildEnv names the store that TestKillChild writes to when it runs
// as the child of TestCommittedBatchSurvivesKill.
const killChildEnv = "PILOTWIRE_SQLITE_KILL_CHILD"

// TestCommittedBatchSurvivesKill writes a batch in a child process, kills
// it with SIGKILL once PutFlows has returned, and finds the batch in the
// store: WAL with synchronous=NORMAL keeps a committed batch across a crash
// of the process.
func TestCommittedBatchSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "committed" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := count(t, db); n != 5000 {
		t.Fatalf("after kill -9: %d flows, want 5000", n)
	}
}

// TestKillChild is the child of TestCommittedBatchSurvivesKill; it does
// nothing in a normal run.
func TestKillChild(t *testing.T) {
	path := os.Getenv(killChildEnv)
	if path == "" {
		t.Skip("runs only as the child of TestCommittedBatchSurvivesKill")
	}
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	put(t, db, 0, 5000)
	fmt.Println("committed")
	time.Sleep(time.Minute) // until killed; never closes the store
	t.Fatal("not killed")
}

package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) flow.Store {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pw.db"))
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

func TestReopenKeepsFlowsAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutFlows(ctx, []flow.Flow{{Key: "a", Host: "x"}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	n, err := db.CountFlows(ctx, flow.Filter{})
	if err != nil || n != 1 {
		t.Fatalf("CountFlows after reopen = %d, %v; want 1", n, err)
	}
}

func TestOpenBadPath(t *testing.T) {
	_, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "missing", "dir", "pw.db"))
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}

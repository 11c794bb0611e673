package postgres_test

import (
	"context"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/postgres"
	"github.com/pilotwire/pilotwire/internal/store/storetest"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// TestConformance runs the flow.Store suite against a real PostgreSQL
// server, a new database for each store the suite opens.
func TestConformance(t *testing.T) {
	srv := testutil.StartPostgres(t)
	storetest.Run(t, func(t *testing.T) flow.Store {
		s, err := postgres.Open(context.Background(), srv.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

package main

import (
	"github.com/pilotwire/pilotwire/internal/procstat"

	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// serverCPU returns a function that reads the CPU time the PostgreSQL
// cluster at url has used so far (the postmaster, its backends running
// now and those that ended), or nil when that cannot be read: a server on
// another machine, no /proc, no right to read its data directory (run as
// root or as the cluster's owner), or a user who may not see where that
// is (SHOW data_directory needs superuser or pg_read_all_settings).
func serverCPU(ctx context.Context, url string) func() time.Duration {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil
	}
	defer c.Close(ctx)
	var dir string
	if err := c.QueryRow(ctx, `SELECT current_setting('data_directory')`).Scan(&dir); err != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return nil
	}
	postmaster, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return nil
	}
	// The backend of this connection is the postmaster's child: seen
	// through /proc, the cluster is on this machine.
	if st, _ := procstat.Read(int(c.PgConn().PID())); st.PPID != postmaster {
		return nil
	}
	return func() time.Duration { return procstat.TreeCPU(postmaster) }
}

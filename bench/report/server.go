package main

import (
	"context"
	"fmt"
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
	if _, _, ppid := procCPU(int(c.PgConn().PID())); ppid != postmaster {
		return nil
	}
	return func() time.Duration {
		total, _, _ := procCPU(postmaster) // ended children's time included
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			pid, err := strconv.Atoi(p.Name())
			if err != nil || pid == postmaster {
				continue
			}
			if _, own, ppid := procCPU(pid); ppid == postmaster {
				total += own
			}
		}
		return total
	}
}

// procCPU reads /proc/PID/stat: the process's CPU time with its ended
// children's, its own alone, and its parent's pid (zeros when unreadable).
func procCPU(pid int) (total, own time.Duration, ppid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0
	}
	// After "pid (comm) ": state, ppid, … utime (the 14th field), stime,
	// cutime, cstime; comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0
	}
	ppid, _ = strconv.Atoi(f[1])
	var ticks [4]int64
	for k := range ticks {
		ticks[k], _ = strconv.ParseInt(f[11+k], 10, 64)
	}
	const tick = 10 * time.Millisecond // USER_HZ: 100 on every Linux Go runs on
	own = time.Duration(ticks[0]+ticks[1]) * tick
	return own + time.Duration(ticks[2]+ticks[3])*tick, own, ppid
}

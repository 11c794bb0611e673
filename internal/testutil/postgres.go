package testutil

import (
	"github.com/pilotwire/pilotwire/internal/procstat"

	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresServer is a PostgreSQL cluster that a test started in a
// temporary directory, listening on loopback only: Debian's postgresql
// package, no system service, torn down when the test ends.
type PostgresServer struct {
	dir, bin, port string
	asNobody       bool
	durable        bool // fsync and full-page writes on (StartPostgresDurable)
	databases      atomic.Int64
}

// nobody is the account a cluster runs under when the tests run as root,
// which PostgreSQL refuses.
const nobodyID = "65534"

// StartPostgres initialises and starts a cluster for t. Without
// PostgreSQL installed the test is skipped, or fails when RequireToolsEnv
// is set. fsync is off: a test's cluster does not outlive it.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	return startPostgres(t, false)
}

// StartPostgresDurable is StartPostgres with fsync and full-page writes
// on, as a real server has them: for benchmarks, whose figures should
// include what durability costs.
func StartPostgresDurable(t testing.TB) *PostgresServer {
	t.Helper()
	return startPostgres(t, true)
}

func startPostgres(t testing.TB, durable bool) *PostgresServer {
	t.Helper()
	bin := postgresBin()
	if bin == "" {
		Missing(t, "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin; scripts/test installs Debian's postgresql as root)")
		return nil
	}
	dir, err := os.MkdirTemp("", "pilotwire-pg-*")
	if err != nil {
		t.Fatal(err)
	}
	s := &PostgresServer{dir: dir, bin: bin, asNobody: os.Geteuid() == 0, durable: durable}
	t.Cleanup(func() {
		s.run(context.Background(), "pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if s.asNobody {
		if _, err := exec.LookPath("setpriv"); err != nil {
			Missing(t, "setpriv is not installed (util-linux), needed to run PostgreSQL as nobody when the tests run as root")
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := s.run(ctx, "initdb", "-D", s.data(), "-U", "pilotwire", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.port = freePort(t)
	s.Start(t)
	return s
}

// postgresBin finds the newest installed PostgreSQL's bin directory.
func postgresBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func (s *PostgresServer) data() string { return filepath.Join(s.dir, "data") }

// run runs one of PostgreSQL's programs, as nobody when we are root.
func (s *PostgresServer) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	prog := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asNobody {
		cmd = exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=" + nobodyID, "--regid=" + nobodyID, "--clear-groups", prog}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, prog, args...)
	}
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

// Start starts the cluster (again, after Stop), on the same port.
func (s *PostgresServer) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := []string{"-p", s.port, "-k", s.dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"}
	if !s.durable {
		opts = append(opts, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	if out, err := s.run(ctx, "pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-o", strings.Join(opts, " "), "-w", "-t", "50", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the cluster at once (immediate mode: as a crash would).
func (s *PostgresServer) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := s.run(ctx, "pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// URL is the connection URL of database db on the cluster.
func (s *PostgresServer) URL(db string) string {
	return fmt.Sprintf("postgres://pilotwire@127.0.0.1:%s/%s?sslmode=disable", s.port, db)
}

// NewDatabase creates an empty database on the cluster and returns its
// URL.
func (s *PostgresServer) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("connect to the test cluster: %v", err)
	}
	defer c.Close(ctx)
	name := fmt.Sprintf("t%d", s.databases.Add(1))
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return s.URL(name)
}

// CPUTime is the CPU time (user and system) that the cluster's processes
// have used so far: the postmaster, the backends and workers running now,
// and those that ended. 0 where there is no /proc (or the cluster is
// stopped).
func (s *PostgresServer) CPUTime() time.Duration {
	pidFile, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	postmaster, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidFile), "\n", 2)[0]))
	if err != nil {
		return 0
	}
	return procstat.TreeCPU(postmaster)
}

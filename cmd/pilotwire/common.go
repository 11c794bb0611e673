package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/pattern"
	"github.com/pilotwire/pilotwire/internal/spool"
	"github.com/pilotwire/pilotwire/internal/store/postgres"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

// newFlagSet makes a command's flag set with the shared flags and a help
// text that ends with examples.
func newFlagSet(g *globals, name, synopsis, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse stays silent; parseFlags prints help to stdout when asked and
	// errors to stderr, once.
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.store, "store", g.store, "flow store: an SQLite file `PATH` or a postgres://user@host/db URL")
	fs.StringVar(&g.catalog, "catalog", g.catalog, "extra catalog entries from `FILE` (YAML)")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: pilotwire %s\n\n", synopsis)
		fmt.Fprintf(out, "Flags:\n")
		fs.PrintDefaults()
		if examples != "" {
			fmt.Fprintf(out, "\nExamples:\n%s", examples)
		}
	}
	return fs
}

// parseFlags parses args, printing help to stdout when asked for it.
func parseFlags(g *globals, fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(g.stdout)
		fs.Usage()
		return err
	}
	if err != nil {
		return usagef("%s: %v (see pilotwire %s --help)", fs.Name(), err, fs.Name())
	}
	return nil
}

// openStore opens the store named by the --store flag for writing,
// creating and migrating it: for the commands that capture (proxy, import).
func openStore(ctx context.Context, g *globals) (flow.Store, error) {
	if postgres.IsURL(g.store) {
		return postgres.Open(ctx, g.store)
	}
	return sqlite.Open(ctx, g.store)
}

// storeName is the store as messages name it: a PostgreSQL URL without
// its password.
func (g *globals) storeName() string {
	if postgres.IsURL(g.store) {
		return postgres.Redact(g.store)
	}
	return g.store
}

// takeGlobals consumes the global flags (--store, --catalog) at the start
// of args, for a command that reads a subcommand name before its own flags.
func takeGlobals(g *globals, args []string) ([]string, error) {
	for len(args) > 0 {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !strings.HasPrefix(args[0], "-") || (name != "store" && name != "catalog") {
			return args, nil
		}
		args = args[1:]
		if !hasValue {
			if len(args) == 0 {
				return nil, usagef("flag needs an argument: --%s (see pilotwire help)", name)
			}
			value, args = args[0], args[1:]
		}
		if name == "store" {
			g.store = value
		} else {
			g.catalog = value
		}
	}
	return args, nil
}

// openStoreReadOnly opens the store named by the --store flag for the
// commands that only read it: it is never created, migrated or changed.
func openStoreReadOnly(ctx context.Context, g *globals) (flow.Store, error) {
	if postgres.IsURL(g.store) {
		st, err := postgres.OpenReadOnly(ctx, g.store)
		if errors.Is(err, postgres.ErrNoStore) {
			return nil, fmt.Errorf("no pilotwire store in %s — capture with `pilotwire proxy --store URL` or `pilotwire import --store URL` first", g.storeName())
		}
		return st, err
	}
	st, err := sqlite.OpenReadOnly(ctx, g.store)
	if errors.Is(err, sqlite.ErrNoStore) {
		return nil, fmt.Errorf("no pilotwire store at %s — capture with `pilotwire proxy` or `pilotwire import` first", g.store)
	}
	return st, err
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// hostPatterns is a repeatable flag of host patterns, each parsed when
// given, so a bad one is a usage error that says where it goes wrong.
type hostPatterns []pattern.Pattern

func (h *hostPatterns) String() string {
	var s []string
	for _, p := range *h {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

// Set takes one pattern or a comma-separated list (no host name holds a
// comma).
func (h *hostPatterns) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		p, err := pattern.Parse(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		*h = append(*h, p)
	}
	return nil
}

// checkProxyName refuses a --name that would not read well as a column
// of a table or a flag value: empty is no name.
func checkProxyName(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("--name %q: at most 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("--name %q: letters, digits, '.', '_' and '-' only", name)
		}
	}
	return nil
}

// recordingFlags are the flags of every command that records flows
// (proxy, gateway, capture): its name in a shared store, and its spool.
type recordingFlags struct {
	name, spool string
	spoolMaxMiB int
}

func (r *recordingFlags) register(fs *flag.FlagSet, what string) {
	fs.StringVar(&r.name, "name", "", "this "+what+"'s `NAME` (letters, digits, . _ -), stored with every flow: several that share a\n"+
		"store (--store postgres://…) keep their devices apart, and sessions, flows and report take --proxy NAME")
	fs.StringVar(&r.spool, "spool", "", "keep flows the store cannot take in `DIR` until it can (default with a postgres:// store:\n"+
		"pilotwire/spool/NAME in the user cache directory; none with an SQLite file; off: none)")
	fs.IntVar(&r.spoolMaxMiB, "spool-max", 4096, "at most `MIB` on disk in the spool; past it flows wait in memory")
}

// check says what is wrong with the flags' values, for a usage error.
func (r *recordingFlags) check() error {
	if r.spoolMaxMiB <= 0 {
		return fmt.Errorf("--spool-max %d: want a positive number of MiB", r.spoolMaxMiB)
	}
	return checkProxyName(r.name)
}

// openSpool opens the spool the flags ask for: --spool, or with a
// postgres:// store and none given the default, pilotwire/spool/NAME in
// the user cache directory; none for an SQLite file (its disk is the
// spool's) or "off". r.spool is set to the directory used. It says on w
// what an earlier run left there.
func (r *recordingFlags) openSpool(g *globals, cmd string) (*spool.Dir, error) {
	switch {
	case r.spool == "off":
		r.spool = ""
		return nil, nil
	case r.spool == "" && !postgres.IsURL(g.store):
		return nil, nil
	case r.spool == "":
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no --spool given and no user cache directory for the default (%v); give --spool DIR or --spool off", err)
		}
		r.spool = filepath.Join(cache, "pilotwire", "spool", cmp.Or(r.name, "default"))
	}
	sp, err := spool.Open(r.spool, int64(r.spoolMaxMiB)<<20)
	if err != nil {
		return nil, err
	}
	if h := sp.Held(); h.Flows > 0 {
		fmt.Fprintf(g.stderr, "pilotwire %s: the spool %s holds %s flows from an earlier run (since %s); delivering them to %s first\n",
			cmd, sp.Path(), flow.Thousands(h.Flows), h.Oldest.Format("2006-01-02 15:04:05"), g.storeName())
	}
	return sp, nil
}

// openStore opens the store a recording command writes. A PostgreSQL
// server that cannot be reached does not stop it when it has a spool:
// it records into the spool and opens the database once it answers.
func (r *recordingFlags) openStore(ctx context.Context, g *globals, cmd string) (flow.Store, error) {
	st, err := openStore(ctx, g)
	if err == nil || !postgres.IsURL(g.store) || r.spool == "off" || !postgres.Unreachable(err) {
		return st, err
	}
	fmt.Fprintf(g.stderr, "pilotwire %s: %v\n  recording into the spool until the database answers (tried again every %s)\n", cmd, err, storeRetry)
	return postgres.OpenLater(g.store, storeRetry, err), nil
}

// storeRetry is how often a recording command tries a PostgreSQL server
// it could not reach at start.
const storeRetry = 5 * time.Second

// stopped says where the flows went when a recording command stops;
// done, when not empty, says what else it did ("rules removed").
func (r *recordingFlags) stopped(g *globals, cmd, done string, rec *flow.Recorder) {
	if done != "" {
		done += "; "
	}
	s := rec.Stats()
	if h := rec.Health(); h.Spool.Flows > 0 {
		fmt.Fprintf(g.stderr, "pilotwire %s: stopped; %s%s flows wait in the spool %s for %s (it could not be written); the next start delivers them\n",
			cmd, done, flow.Thousands(h.Spool.Flows), r.spool, g.storeName())
		return
	}
	// Written counts writes: an open tunnel written again when it ends
	// counts twice.
	fmt.Fprintf(g.stderr, "pilotwire %s: stopped; %severy flow stored in %s (%d writes in %d batches)\n", cmd, done, g.storeName(), s.Written, s.Batches)
}

// spoolOf is sp as the Recorder takes it: a nil *spool.Dir is no spool.
func spoolOf(sp *spool.Dir) flow.Spool {
	if sp == nil {
		return nil
	}
	return sp
}

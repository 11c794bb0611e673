package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

const storeUsage = `Usage: pilotwire store SUBCOMMAND [flags]

Work on flow stores as a whole.

Subcommands:
  copy        copy every flow (and the learned pass-through list) from one store into another

Run "pilotwire store SUBCOMMAND --help" for its flags and examples.
`

const storeExamples = `  pilotwire store copy --from pilotwire.db --to postgres://pilotwire@db.lab/pilotwire   # a lab that grows up
  pilotwire store copy --from postgres://pilotwire@db.lab/pilotwire --to evidence.db    # one store to hand on
`

func runStore(ctx context.Context, g *globals, args []string) error {
	args, err := takeGlobals(g, args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		fmt.Fprint(g.stderr, storeUsage)
		return usagef("store: no subcommand given (want copy)")
	}
	switch args[0] {
	case "copy":
		return runStoreCopy(ctx, g, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(g.stdout, storeUsage+"\nExamples:\n"+storeExamples)
		return nil
	}
	return usagef("store: unknown subcommand %q (want copy; see pilotwire store --help)", args[0])
}

func runStoreCopy(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "store copy", "store copy --from STORE --to STORE", storeExamples)
	from := fs.String("from", "", "the store to copy from (`STORE`: an SQLite file or a postgres:// URL; default --store)")
	to := fs.String("to", "", "the store to copy into (`STORE`), made if needed; flows already there with the same key are replaced")
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("store copy: unexpected argument %q (the stores are --from and --to)", fs.Arg(0))
	}
	if *from == "" {
		*from = g.store
	}
	if *to == "" {
		return usagef("store copy: --to STORE is required (see pilotwire store copy --help)")
	}
	if *to == *from {
		return usagef("store copy: --from and --to are the same store")
	}
	src, err := openStoreReadOnly(ctx, &globals{store: *from})
	if err != nil {
		return err
	}
	defer src.Close()
	dstG := &globals{store: *to}
	dst, err := openStore(ctx, dstG)
	if err != nil {
		return err
	}
	total, err := src.CountFlows(ctx, flow.Filter{})
	if err != nil {
		dst.Close()
		return err
	}
	srcName := (&globals{store: *from}).storeName()
	start, last := time.Now(), time.Now()
	st, err := flow.Copy(ctx, dst, src, func(n int64) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(g.stderr, "pilotwire store copy: %s of %s flows (%s flows/s)\n", flow.Thousands(n), flow.Thousands(total),
				flow.Thousands(int64(float64(n)/time.Since(start).Seconds())))
		}
	})
	if err == nil {
		err = refreshStats(ctx, dst, st.Flows)
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store copy: %s → %s: %w (%s flows copied before it stopped; running the copy again replaces them, it does not add them twice)",
			srcName, dstG.storeName(), err, flow.Thousands(st.Flows))
	}
	if st.Flows == 0 {
		fmt.Fprintf(g.stderr, "pilotwire store copy: %s holds no flows; nothing copied\n", srcName)
		return nil
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(g.stderr, "pilotwire store copy: %s flows and %d learned pass-through hosts copied from %s to %s in %.1fs (%s flows/s)\n",
		flow.Thousands(st.Flows), st.PassThrough, srcName, dstG.storeName(), secs, flow.Thousands(int64(float64(st.Flows)/max(secs, 1e-3))))
	return nil
}

// refreshStats has a store that plans its reads (PostgreSQL) look at its
// flows again after n were written in one go: without fresh statistics
// its planner may read a big session the slow way until autovacuum comes
// by. Small writes leave it to autovacuum.
func refreshStats(ctx context.Context, st flow.Store, n int64) error {
	a, ok := st.(interface{ Analyze(context.Context) error })
	if !ok || n < 10000 {
		return nil
	}
	return a.Analyze(ctx)
}

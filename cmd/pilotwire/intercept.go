package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/pilotwire/pilotwire/internal/ca"
	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/intercept"
)

// interceptFlags are the proxy's TLS interception flags.
type interceptFlags struct {
	on          bool
	hosts, none hostPatterns
	caDir       *string
}

func (f *interceptFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.on, "intercept", false, "open the TLS of tunnels to record each request's URL, with the lab CA (pilotwire ca init);\n"+
		"hosts the catalog marks no-inspect, --no-intercept hosts and hosts a client refused are tunnelled untouched")
	fs.Var(&f.hosts, "intercept-hosts", "with --intercept: intercept only these host `PATTERNS` (comma-separate or repeat)")
	fs.Var(&f.none, "no-intercept", "with --intercept: never intercept these host `PATTERNS` (comma-separate or repeat)")
	f.caDir = caDirFlag(fs)
}

// interceptor builds the Interceptor the flags describe, or nil when
// --intercept is off. st, if it keeps the learned pass-through list, gives
// the hosts learned before and keeps the new ones.
func (f *interceptFlags) interceptor(ctx context.Context, g *globals, cat *catalog.Catalog, st flow.Store) (*intercept.Interceptor, error) {
	if !f.on {
		if len(f.hosts) > 0 || len(f.none) > 0 {
			return nil, usagef("proxy: --intercept-hosts and --no-intercept need --intercept")
		}
		return nil, nil
	}
	o := intercept.Options{
		DoNotInspect: func(host string) (string, bool) {
			e, ok := cat.NoInspect(host)
			return e.NoInspect, ok
		},
	}
	o.Hosts, o.Never = f.hosts, f.none
	dir, err := caDir(*f.caDir)
	if err != nil {
		return nil, err
	}
	if o.CA, err = ca.Load(dir); err != nil {
		return nil, usagef("proxy: --intercept: %v", err)
	}
	if pts, ok := st.(flow.PassThroughStore); ok {
		if o.Learned, err = pts.PassThroughs(ctx); err != nil {
			return nil, fmt.Errorf("proxy: reading the learned pass-through list: %w", err)
		}
		o.OnLearn = func(p flow.PassThrough) {
			fmt.Fprintf(g.stderr, "pilotwire proxy: %s refused the certificate for %s; it is tunnelled untouched from now on (%s)\n", p.Client, p.Host, p.Reason)
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := pts.LearnPassThrough(sctx, p); err != nil {
				fmt.Fprintf(g.stderr, "pilotwire proxy: keeping %s on the learned pass-through list: %v (it is kept until the proxy stops)\n", p.Host, err)
			}
		}
	}
	return intercept.New(o), nil
}

// printIntercepting says loudly that TLS is being opened, and with what.
func printIntercepting(w io.Writer, ic *intercept.Interceptor, cat *catalog.Catalog) {
	marked := 0
	for _, e := range cat.Entries() {
		if e.NoInspect != "" {
			marked++
		}
	}
	c := ic.CA()
	fmt.Fprintf(w, "  TLS INTERCEPTION ON: certificates minted by %q (SHA-256 %s, %s)\n", c.String(), c.Fingerprint(), c.Dir)
	fmt.Fprintf(w, "    devices must trust it (pilotwire ca export -o pilotwire-root.cer; certutil -addstore Root pilotwire-root.cer);\n")
	fmt.Fprintf(w, "    tunnelled untouched: %d catalog entries marked no-inspect, %d learned hosts", marked, len(ic.Learned()))
	if n := ic.Options().Never; len(n) > 0 {
		fmt.Fprintf(w, ", --no-intercept %s", (*hostPatterns)(&n).String())
	}
	if h := ic.Options().Hosts; len(h) > 0 {
		fmt.Fprintf(w, "; only --intercept-hosts %s are intercepted", (*hostPatterns)(&h).String())
	}
	fmt.Fprintln(w)
}

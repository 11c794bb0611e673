package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pilotwire/pilotwire/internal/ca"
	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/intercept"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// interceptFlags are the proxy's TLS interception flags.
type interceptFlags struct {
	on          bool
	hosts, none hostPatterns
	bodies      byteSize
	caDir       *string
}

func (f *interceptFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.on, "intercept", false, "open the TLS of tunnels to record each request's URL, with the lab CA (pilotwire ca init);\n"+
		"hosts the catalog marks no-inspect, --no-intercept hosts and hosts a client refused are tunnelled untouched")
	fs.Var(&f.hosts, "intercept-hosts", "with --intercept: intercept only these host `PATTERNS` (comma-separate or repeat)")
	fs.Var(&f.none, "no-intercept", "with --intercept: never intercept these host `PATTERNS` (comma-separate or repeat)")
	fs.Var(&f.bodies, "bodies", "with --intercept: keep the first `SIZE` bytes (e.g. 64KiB, 1MiB) of each request's and response's body,\n"+
		"compressed in the store (pilotwire flows --bodies shows them); never for hosts the catalog marks no-bodies (sign-in, activation)")
	f.caDir = caDirFlag(fs)
}

// check says what is wrong with the flags alone (a usage error), before
// anything is opened.
func (f *interceptFlags) check(cmd string) error {
	if f.on {
		return nil
	}
	if len(f.hosts) > 0 || len(f.none) > 0 {
		return usagef("%s: --intercept-hosts and --no-intercept need --intercept", cmd)
	}
	if f.bodies > 0 {
		return usagef("%s: --bodies needs --intercept (bodies are read inside intercepted TLS)", cmd)
	}
	return nil
}

// interceptor builds the Interceptor the flags describe, or nil when
// --intercept is off. st, if it keeps the learned pass-through list, gives
// the hosts learned before and keeps the new ones.
// cmd ("proxy", "gateway") names the command in what it says.
func (f *interceptFlags) interceptor(ctx context.Context, g *globals, cmd string, cat *catalog.Catalog, st flow.Store) (*intercept.Interceptor, error) {
	if err := f.check(cmd); err != nil || !f.on {
		return nil, err
	}
	o := intercept.Options{
		DoNotInspect: func(host string) (string, bool) {
			e, ok := cat.NoInspect(host)
			return e.NoInspect, ok
		},
		Bodies: int(f.bodies),
		NoBodies: func(host string) (string, bool) {
			e, ok := cat.NoBodies(host)
			return e.NoBodies, ok
		},
	}
	o.Hosts, o.Never = f.hosts, f.none
	dir, err := caDir(*f.caDir)
	if err != nil {
		return nil, err
	}
	if o.CA, err = ca.Load(dir); err != nil {
		return nil, usagef("%s: --intercept: %v", cmd, err)
	}
	if pts, ok := st.(flow.PassThroughStore); ok {
		if o.Learned, err = pts.PassThroughs(ctx); err != nil {
			return nil, fmt.Errorf("%s: reading the learned pass-through list: %w", cmd, err)
		}
		o.OnLearn = func(p flow.PassThrough) {
			fmt.Fprintf(g.stderr, "pilotwire %s: %s refused the certificate for %s; it is tunnelled untouched from now on (%s)\n", cmd, p.Client, p.Host, p.Reason)
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := pts.LearnPassThrough(sctx, p); err != nil {
				fmt.Fprintf(g.stderr, "pilotwire %s: keeping %s on the learned pass-through list: %v (it is kept until the %s stops)\n", cmd, p.Host, err, cmd)
			}
		}
	}
	return intercept.New(o), nil
}

// printIntercepting says loudly that TLS is being opened, and with what.
func printIntercepting(w io.Writer, ic *intercept.Interceptor, cat *catalog.Catalog) {
	marked, noBodies := 0, 0
	for _, e := range cat.Entries() {
		if e.NoInspect != "" {
			marked++
		}
		if e.NoBodies != "" {
			noBodies++
		}
	}
	c := ic.CA()
	fmt.Fprintf(w, "  TLS INTERCEPTION ON: certificates minted by %q (SHA-256 %s, %s)\n", c.String(), c.Fingerprint(), c.Dir)
	fmt.Fprintf(w, "    devices must trust it (pilotwire ca export -o pilotwire-root.cer; certutil -addstore Root pilotwire-root.cer);\n")
	if n := ic.Options().Bodies; n > 0 {
		fmt.Fprintf(w, "    BODIES KEPT: the first %s of each request's and response's body (none for %d catalog entries marked no-bodies)\n",
			timeline.FormatBytes(int64(n)), noBodies)
	}
	fmt.Fprintf(w, "    tunnelled untouched: %d catalog entries marked no-inspect, %d learned hosts", marked, len(ic.Learned()))
	if n := ic.Options().Never; len(n) > 0 {
		fmt.Fprintf(w, ", --no-intercept %s", (*hostPatterns)(&n).String())
	}
	if h := ic.Options().Hosts; len(h) > 0 {
		fmt.Fprintf(w, "; only --intercept-hosts %s are intercepted", (*hostPatterns)(&h).String())
	}
	fmt.Fprintln(w)
}

// byteSize is a flag's size in bytes: a number, or one with a unit (k,
// KB, KiB, M, MB, MiB; all powers of 1024), at most flow.MaxBody.
type byteSize int64

func (b *byteSize) String() string {
	if *b == 0 {
		return "0"
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Set(s string) error {
	num := strings.TrimRightFunc(s, unicode.IsLetter)
	unit := strings.ToLower(s[len(num):])
	mult := int64(1)
	switch unit {
	case "", "b":
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	default:
		return fmt.Errorf("%q: unknown unit %q (use a number of bytes, or KiB or MiB)", s, s[len(num):])
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q: want a size such as 65536, 64KiB or 1MiB", s)
	}
	if n > flow.MaxBody/mult {
		return fmt.Errorf("%q: at most %s", s, timeline.FormatBytes(flow.MaxBody))
	}
	*b = byteSize(n * mult)
	return nil
}

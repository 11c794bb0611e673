package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/diff"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

const diffExamples = `  pilotwire diff 3 7                                  # sessions 3 and 7 of the store, side by side
  pilotwire diff --format html -o d.html lab.pcapng customer.har   # the newest session of each file
  pilotwire diff 3 customer.har --format markdown     # a lab run against a customer's capture
`

func runDiff(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "diff", "diff [flags] A B   (each a session number of the store or a capture file)", diffExamples)
	var (
		format, out, rules string
		gap                time.Duration
		strict             bool
	)
	fs.StringVar(&format, "format", "text", "output `FORMAT`: "+strings.Join(report.DiffFormats, ", "))
	fs.StringVar(&out, "o", "", "write to `FILE` instead of standard output")
	fs.DurationVar(&gap, "gap", timeline.DefaultGap, "idle `TIME` that ends a session")
	fs.StringVar(&rules, "rules", "", "milestone and phase rules from `FILE` instead of the built-in ones")
	addStrictFlag(fs, &strict)
	pos, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("diff: give two sessions: session numbers of the store (pilotwire sessions) or capture files, got %d", len(pos))
	}
	if !slices.Contains(report.DiffFormats, format) && format != "md" {
		return usagef("diff: --format %q: want %s", format, strings.Join(report.DiffFormats, ", "))
	}
	if gap <= 0 {
		return usagef("diff: --gap %s: want a positive duration like 30m", gap)
	}
	cat, err := loadCatalog(g)
	if err != nil {
		return err
	}
	rs, err := loadRules(g, rules)
	if err != nil {
		return err
	}
	var sides [2]diff.Side
	for i, arg := range pos {
		side, err := diffSide(ctx, g, arg, gap, strict, cat, rs)
		if err != nil {
			return err
		}
		sides[i] = side
	}
	d := diff.Compare(sides[0], sides[1])
	opt := report.Options{Generator: "pilotwire " + version}
	if out == "" || out == "-" {
		return report.RenderDiff(g.stdout, format, d, opt)
	}
	return writeFileAtomic(out, func(w io.Writer) error { return report.RenderDiff(w, format, d, opt) })
}

// diffSide reads one side of a diff: session N of the store when arg is a
// number, else the newest session of the capture file arg.
func diffSide(ctx context.Context, g *globals, arg string, gap time.Duration, strict bool, cat *catalog.Catalog, rs *timeline.Rules) (diff.Side, error) {
	number, err := strconv.Atoi(arg)
	path := ""
	if err != nil {
		path, number = arg, 0
	} else if number < 1 {
		return diff.Side{}, usagef("diff: session %d: session numbers start at 1 (pilotwire sessions lists them)", number)
	}
	src, err := openSource(ctx, g, path, strict)
	if err != nil {
		return diff.Side{}, err
	}
	defer src.Close()
	s, err := session.Find(ctx, src, gap, number, session.Who{})
	if err != nil {
		return diff.Side{}, sessionError(err)
	}
	if s.Lost > 0 {
		fmt.Fprintf(g.stderr, "pilotwire: session %d of %s: %s\n", s.Number, src.Name(), session.LostNote(s.Lost))
	}
	return session.DiffSide(ctx, src, s, cat, timeline.Options{Rules: rs})
}

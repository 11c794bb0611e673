package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pilotwire/pilotwire/internal/export"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

const harExportExamples = `  pilotwire export --session 3 -o run3.har      # the same HAR the live page downloads
  pilotwire export --client 10.0.0.23 > vm.har  # the newest session of a client
  pilotwire export lab.pcapng -o lab.har        # a capture file's newest session, as HAR
  pilotwire export --session 3 --bodies -o run3.har   # with the bodies proxy --intercept --bodies kept

Open the HAR in Chromium or Edge (DevTools > Network > Import HAR), Firefox, or Fiddler
(File > Import Sessions > HTTPArchive); pilotwire import reads it back, client and SNI included.
`

func runExport(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "export", "export [flags] [CAPTURE-FILE]", harExportExamples)
	var (
		number              int
		client, format, out string
		gap                 time.Duration
		strict, bodies      bool
	)
	fs.IntVar(&number, "session", 0, "export session `N` (see pilotwire sessions; default: the newest)")
	fs.StringVar(&client, "client", "", "export the newest session of this client `ADDR` or device label")
	fs.StringVar(&format, "format", "har", "output `FORMAT`: har (HAR 1.2)")
	fs.StringVar(&out, "o", "", "write to `FILE` instead of standard output")
	fs.DurationVar(&gap, "gap", timeline.DefaultGap, "idle `TIME` that ends a session")
	fs.BoolVar(&bodies, "bodies", false, "also write the request and response bodies kept (proxy --intercept --bodies): postData and content text")
	addStrictFlag(fs, &strict)
	pos, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 1:
		return usagef("export: one capture file at most, got %q", pos)
	case format != "har":
		return usagef("export: --format %q: want har", format)
	case gap <= 0:
		return usagef("export: --gap %s: want a positive duration like 30m", gap)
	}
	src, err := openSource(ctx, g, first(pos), strict)
	if err != nil {
		return err
	}
	defer src.Close()
	s, err := session.Find(ctx, src, gap, number, session.Who{Client: client})
	if err != nil {
		return sessionError(err)
	}
	info := export.HARInfo{Version: version, Comment: fmt.Sprintf("session %d of %s", s.Number, src.Name())}
	write := func(w io.Writer) error {
		return export.WriteHAR(ctx, w, info, func(fn func(*flow.Flow) error) error {
			var ferr error
			var fields flow.Fields // the default: all but bodies
			if bodies {
				fields = flow.FieldsAll
			}
			err := session.Flows(ctx, src, s, fields, func(f *flow.Flow) {
				if !bodies {
					f.Bodies = nil // a store may fill them unasked
				}
				if ferr == nil {
					ferr = fn(f)
				}
			})
			return cmp.Or(ferr, err)
		})
	}
	if out == "" || out == "-" {
		return write(g.stdout)
	}
	if err := writeFileAtomic(out, write); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "pilotwire export: session %d (%d flows) written to %s\n", s.Number, s.Flows, out)
	return nil
}

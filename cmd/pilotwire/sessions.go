package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/store/mem"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

const sessionsExamples = `  pilotwire sessions                       # every device session, newest first
  pilotwire sessions --store postgres://pilotwire@db.lab/pilotwire --proxy site-b   # one site of a shared store
  pilotwire sessions --gap 10m             # split runs at 10 minutes of silence
  pilotwire sessions --client 10.0.0.23 --json
  pilotwire sessions customer.har          # sessions in a capture file, without a store
`

func runSessions(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "sessions", "sessions [flags] [CAPTURE-FILE]", sessionsExamples)
	var (
		client, proxyName string
		gap               time.Duration
		asJSON, strict    bool
	)
	fs.StringVar(&client, "client", "", "only sessions of this client `ADDR` or device label")
	fs.StringVar(&proxyName, "proxy", "", "only sessions recorded by the pilotwire proxy of this `NAME` (proxy --name)")
	addStrictFlag(fs, &strict)
	fs.DurationVar(&gap, "gap", timeline.DefaultGap, "idle `TIME` that ends a session")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	pos, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("sessions: one capture file at most, got %q", pos)
	}
	if gap <= 0 {
		return usagef("sessions: --gap %s: want a positive duration like 30m", gap)
	}
	src, err := openSource(ctx, g, first(pos), strict)
	if err != nil {
		return err
	}
	defer src.Close()
	all, err := session.List(ctx, src, gap)
	if err != nil {
		return err
	}
	who := session.Who{Proxy: proxyName, Client: client}
	var list []timeline.Session
	named := false                           // a proxy column only when some proxy has a name
	for _, s := range slices.Backward(all) { // newest first
		if who.Owns(s) {
			list = append(list, s)
			named = named || s.Proxy != ""
		}
	}
	notes, err := session.IncompleteNotes(ctx, src, list)
	if err != nil {
		return err
	}
	if asJSON {
		// The JSON shape has no place for notes yet: they go to stderr.
		for _, s := range list {
			if n := notes[s.Number]; n != "" {
				fmt.Fprintf(g.stderr, "pilotwire: session %d: %s\n", s.Number, n)
			}
		}
		// An empty list is still a JSON document: "[]".
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		out := make([]report.SessionJSON, 0, len(list))
		for _, s := range list {
			out = append(out, report.NewSessionJSON(s))
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if len(list) == 0 {
		if who != (session.Who{}) {
			return emptyf("no sessions of %s in %s", who, src.Name())
		}
		return emptyf("no flows in %s: no sessions (capture with pilotwire proxy, or read a capture file with pilotwire import FILE)", src.Name())
	}
	if asJSON {
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if named {
		fmt.Fprint(tw, "#\tPROXY\tCLIENT\tDEVICE\tSTART\tDURATION\tFLOWS\tBYTES\t\n")
	} else {
		fmt.Fprint(tw, "#\tCLIENT\tDEVICE\tSTART\tDURATION\tFLOWS\tBYTES\t\n")
	}
	for _, s := range list {
		dev := dash(s.Device)
		if s.Name != "" {
			dev += " [" + s.Name + "]"
		}
		fmt.Fprintf(tw, "%d\t", s.Number)
		if named {
			fmt.Fprintf(tw, "%s\t", dash(s.Proxy))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t", s.Client, dev, s.Start.Local().Format("2006-01-02 15:04:05"),
			timeline.FormatOffset(s.Duration()), s.Flows, humanBytes(s.Bytes))
		// A note ends the row, outside the right-aligned columns.
		if n := notes[s.Number]; n != "" {
			fmt.Fprintf(tw, "  %s", n)
		}
		if s.Lost > 0 {
			fmt.Fprintf(tw, "  %s", session.LostNote(s.Lost))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("report capture.har --format html"), and returns the
// positional ones.
func parseInterleaved(g *globals, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(g, fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		rest := fs.Args()
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil // everything after "--" is positional
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// openSource opens the capture file path, read into a store in memory, or
// the store when path is "".
// strict makes a capture file that cannot be read whole an error; what it
// could not read is said on stderr.
func openSource(ctx context.Context, g *globals, path string, strict bool) (session.Source, error) {
	if path == "" {
		st, err := openStoreReadOnly(ctx, g)
		if err != nil {
			return nil, err
		}
		return session.FromStore(st, g.storeName()), nil
	}
	src, res, err := session.ReadFile(ctx, path, strict, mem.New())
	if err != nil {
		return nil, err
	}
	warnPartial(g.stderr, res)
	return src, nil
}

// sessionError words the session package's errors for the exit codes: no
// flows is an empty result, a session that does not exist a usage mistake.
func sessionError(err error) error {
	var none *session.NoFlowsError
	var choice *session.ChoiceError
	switch {
	case errors.As(err, &none):
		return emptyf("%s", none.Error())
	case errors.As(err, &choice):
		return usagef("%s", choice.Msg)
	}
	return err
}

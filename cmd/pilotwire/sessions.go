package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

const sessionsExamples = `  pilotwire sessions                       # every device session, newest first
  pilotwire sessions --gap 10m             # split runs at 10 minutes of silence
  pilotwire sessions --client 10.0.0.23 --json
  pilotwire sessions customer.har          # sessions in a capture file, without a store
`

func runSessions(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "sessions", "sessions [flags] [CAPTURE-FILE]", sessionsExamples)
	var (
		client         string
		gap            time.Duration
		asJSON, strict bool
	)
	fs.StringVar(&client, "client", "", "only sessions of this client `ADDR` or device label")
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
	all, err := listSessions(ctx, src, gap)
	if err != nil {
		return err
	}
	var list []timeline.Session
	for _, s := range slices.Backward(all) { // newest first
		if client == "" || s.Client == client || s.Device == client {
			list = append(list, s)
		}
	}
	notes, err := incompleteNotes(ctx, src, list)
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
		if client != "" {
			return emptyf("no sessions of %s in %s", client, src.Name())
		}
		return emptyf("no flows in %s: no sessions (capture with pilotwire proxy, or read a capture file with pilotwire import FILE)", src.Name())
	}
	if asJSON {
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "#\tCLIENT\tDEVICE\tSTART\tDURATION\tFLOWS\tBYTES\t")
	for _, s := range list {
		dev := dash(s.Device)
		if s.Name != "" {
			dev += " [" + s.Name + "]"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t", s.Number, s.Client, dev, s.Start.Local().Format("2006-01-02 15:04:05"),
			timeline.FormatOffset(s.Duration()), s.Flows, humanBytes(s.Bytes))
		// A note ends the row, outside the right-aligned columns.
		if n := notes[s.Number]; n != "" {
			fmt.Fprintf(tw, "  %s", n)
		}
		if s.Lost > 0 {
			fmt.Fprintf(tw, "  %s", lostNote(s.Lost))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// lostNote says that n flows of a session were seen but never stored.
func lostNote(n int64) string {
	return fmt.Sprintf("incomplete: %d flows not stored (the store could not be written)", n)
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

// flowSource is where sessions and reports read flows from: the store, or a
// capture file read straight through an importer. Either way the report is
// built from the same []flow.Flow.
type flowSource interface {
	// Each calls fn for each flow that f selects (Client, Since, Until),
	// in start order.
	Each(ctx context.Context, f flow.Filter, fn func(*flow.Flow) error) error
	// Name says where the flows come from, for messages.
	Name() string
	Close() error
}

// openSource opens the capture file path, or the store when path is "".
// strict makes a capture file that cannot be read whole an error.
func openSource(ctx context.Context, g *globals, path string, strict bool) (flowSource, error) {
	if path == "" {
		st, err := openStoreReadOnly(ctx, g)
		if err != nil {
			return nil, err
		}
		return storeSource{st: st, name: g.store}, nil
	}
	return readCapture(ctx, g, path, strict)
}

type storeSource struct {
	st   flow.Store
	name string
}

func (s storeSource) Each(ctx context.Context, f flow.Filter, fn func(*flow.Flow) error) error {
	// One variable for every flow: a pointer to the callback's own
	// argument would move each flow to the heap (384 bytes a flow).
	var cur flow.Flow
	return s.st.Flows(ctx, f, func(fl flow.Flow) error {
		cur = fl
		return fn(&cur)
	})
}
func (s storeSource) Name() string { return s.name }
func (s storeSource) Close() error { return s.st.Close() }

// fileSource holds the flows of one capture file, in start order. Flows
// from a file have no store IDs; each gets its 1-based position in the file
// instead, so a report's flow numbers still point somewhere.
type fileSource struct {
	path  string
	flows []flow.Flow
}

func readCapture(ctx context.Context, g *globals, path string, strict bool) (*fileSource, error) {
	src := &fileSource{path: path}
	res, err := importer.ReadFile(ctx, path, importer.Options{Strict: strict}, func(f flow.Flow) error {
		f.ID = int64(len(src.flows) + 1)
		src.flows = append(src.flows, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	warnPartial(g.stderr, res)
	slices.SortStableFunc(src.flows, func(a, b flow.Flow) int { return a.Start.Compare(b.Start) })
	return src, nil
}

// Each selects as a store does (flow.Filter.Match, Newest, Limit), so a
// capture file answers every filter the store answers.
func (s *fileSource) Each(ctx context.Context, f flow.Filter, fn func(*flow.Flow) error) error {
	n := 0
	for k := range s.flows {
		i := k
		if f.Newest {
			i = len(s.flows) - 1 - k
		}
		fl := &s.flows[i]
		if k%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !f.Match(fl) {
			continue
		}
		if err := fn(fl); err != nil {
			return err
		}
		if n++; f.Limit > 0 && n == f.Limit {
			return nil
		}
	}
	return nil
}
func (s *fileSource) Name() string { return s.path }
func (s *fileSource) Close() error { return nil }

// listSessions splits every flow of src into sessions, numbered oldest
// first.
func listSessions(ctx context.Context, src flowSource, gap time.Duration) ([]timeline.Session, error) {
	sp := timeline.NewSplitter(gap)
	// A store keeps each client's activity per minute as flows are
	// written: splitting that reads a few rows per device-hour instead of
	// every flow, and gives the same sessions for any gap of a minute or
	// more.
	if ss, ok := src.(storeSource); ok && gap >= flow.ActivityWindow {
		err := ss.st.Activity(ctx, flow.Filter{}, func(a flow.Activity) error { sp.AddActivity(&a); return nil })
		if err != nil {
			return nil, fmt.Errorf("read activity from %s: %w", src.Name(), err)
		}
		return sp.Sessions(), nil
	}
	// Otherwise, the fields a Brief read fills, which a store reads much
	// faster than whole flows.
	err := src.Each(ctx, flow.Filter{Brief: true}, func(f *flow.Flow) error { sp.Add(f); return nil })
	if err != nil {
		return nil, fmt.Errorf("read flows from %s: %w", src.Name(), err)
	}
	return sp.Sessions(), nil
}

// pickSession chooses the session a report is about: number n, else the
// newest of client, else the newest of all.
func pickSession(all []timeline.Session, n int, client, where string) (timeline.Session, error) {
	if len(all) == 0 {
		return timeline.Session{}, emptyf("no flows in %s: nothing to report (capture with pilotwire proxy, or read a capture file with pilotwire import FILE)", where)
	}
	if n != 0 {
		if n < 1 || n > len(all) {
			have := fmt.Sprintf("sessions 1 to %d", len(all))
			if len(all) == 1 {
				have = "only session 1"
			}
			return timeline.Session{}, usagef("--session %d: %s has %s (see pilotwire sessions)", n, where, have)
		}
		s := all[n-1]
		if client != "" && s.Client != client && s.Device != client {
			return timeline.Session{}, usagef("session %d belongs to %s, not %s", n, s.Client, client)
		}
		return s, nil
	}
	for _, s := range slices.Backward(all) {
		if client == "" || s.Client == client || s.Device == client {
			return s, nil
		}
	}
	var clients []string
	for _, s := range all {
		if !slices.Contains(clients, s.Client) {
			clients = append(clients, s.Client)
		}
	}
	if len(clients) > 5 {
		clients = append(clients[:5], "…")
	}
	return timeline.Session{}, fmt.Errorf("no sessions of %s in %s (clients: %s): %w", client, where,
		strings.Join(clients, ", "), flow.ErrNotFound)
}

// findSession finds the session a report is about (see listSessions and
// pickSession). Its flows are read after, by sessionFlows, only in its time
// range.
func findSession(ctx context.Context, src flowSource, gap time.Duration, n int, client string) (timeline.Session, error) {
	all, err := listSessions(ctx, src, gap)
	if err != nil {
		return timeline.Session{}, err
	}
	return pickSession(all, n, client, src.Name())
}

// sessionFlows calls fn for each flow of session s, in start order (the
// PAC answers inside it too, see timeline.Session.Contains), one at a time:
// nothing holds the session's flows, which for a million flows would be
// some 400 MiB. fields are the fields fn needs (see flow.Filter.Fields;
// zero for all). fn must not keep f.
func sessionFlows(ctx context.Context, src flowSource, s timeline.Session, fields flow.Fields, fn func(f *flow.Flow)) error {
	n := 0
	f := flow.Filter{Client: s.Client, Since: s.Start, Until: s.End.Add(time.Nanosecond), Fields: fields}
	err := src.Each(ctx, f, func(fl *flow.Flow) error {
		if s.Contains(fl) {
			fn(fl)
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read session %d from %s: %w", s.Number, src.Name(), err)
	}
	if n == 0 {
		return errors.New("the session's flows are gone from " + src.Name())
	}
	return nil
}

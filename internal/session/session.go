// Package session is the pipeline every view of a device's run goes
// through: finding the sessions in a store (from the activity it keeps; a
// capture file is first read into a store the caller gives, see ReadFile),
// choosing one, and streaming its flows to whoever builds on them (the
// report's timeline.Builder, endpoints observed, and the coming web page
// and diff). None of them rebuilds it.
//
// It computes sessions and hands out flows; it renders nothing, so it must
// not import internal/report, and it reads stores only through flow.Store
// (it imports no store: the caller chooses which).
package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/diff"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// NoFlowsError says a source holds no flows, so no session: an empty
// result, not a failure.
type NoFlowsError struct{ Where string }

func (e *NoFlowsError) Error() string {
	return fmt.Sprintf("no flows in %s: nothing to report (capture with pilotwire proxy, or read a capture file with pilotwire import FILE)", e.Where)
}

// ChoiceError says the session asked for does not exist, or is not the
// client's: a mistake in what was asked.
type ChoiceError struct{ Msg string }

func (e *ChoiceError) Error() string { return e.Msg }

// LostNote says that n flows of a session were seen but never stored.
func LostNote(n int64) string {
	return fmt.Sprintf("incomplete: %d flows not stored (the store could not be written)", n)
}

// Source is where sessions and reports read flows from: a store, either
// the one given by --store or one a capture file was read into (ReadFile).
type Source interface {
	// Each calls fn for each flow that f selects (Client, Since, Until),
	// in start order.
	Each(ctx context.Context, f flow.Filter, fn func(*flow.Flow) error) error
	// Name says where the flows come from, for messages.
	Name() string
	Close() error
}

// FromStore reads sessions from st; name says where it is, for messages.
// Closing the Source closes st.
func FromStore(st flow.Store, name string) Source { return storeSource{st: st, name: name} }

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

// ReadFile reads the capture file path through its importer into st (an
// empty store the caller chooses: `report FILE` gives an in-memory one) and
// returns st as a Source named path, so a capture file is read by the same
// store code as a store: the same filters, order and sessions. The flows
// get IDs in file order (the store's), so a report's flow numbers point to
// a flow's position in the file. strict makes a file that cannot be read
// whole an error; the Result says what could not be read, for the caller
// to warn about. Closing the Source closes st.
func ReadFile(ctx context.Context, path string, strict bool, st flow.Store) (Source, importer.Result, error) {
	// Batches keep a flow's copy in the batch short-lived; the store keeps
	// the one that lasts.
	const batch = 1024
	buf := make([]flow.Flow, 0, batch)
	put := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := st.PutFlows(ctx, buf); err != nil {
			return fmt.Errorf("keep the flows of %s: %w", path, err)
		}
		buf = buf[:0]
		return nil
	}
	res, err := importer.ReadFile(ctx, path, importer.Options{Strict: strict}, func(f flow.Flow) error {
		if buf = append(buf, f); len(buf) == batch {
			return put()
		}
		return nil
	})
	if err == nil {
		err = put()
	}
	if err != nil {
		st.Close()
		return nil, res, err
	}
	return FromStore(st, path), res, nil
}

// List splits every flow of src into sessions, numbered oldest
// first.
func List(ctx context.Context, src Source, gap time.Duration) ([]timeline.Session, error) {
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

// Who narrows the sessions Pick chooses from: those of a proxy (by
// name, flow.Flow.Proxy) and of a client (address or device label);
// empty fields narrow nothing.
type Who struct {
	Proxy  string
	Client string
}

// Owns reports whether s is of w.
func (w Who) Owns(s timeline.Session) bool {
	return (w.Proxy == "" || s.Proxy == w.Proxy) && (w.Client == "" || s.Client == w.Client || s.Device == w.Client)
}

func (w Who) String() string {
	switch {
	case w.Proxy == "":
		return w.Client
	case w.Client == "":
		return "proxy " + w.Proxy
	}
	return w.Client + " of proxy " + w.Proxy
}

// whose names s's owner as Who.String does.
func whose(s timeline.Session) string {
	return Who{Proxy: s.Proxy, Client: s.Client}.String()
}

// Pick chooses the session a report is about: number n, else the
// newest of who's, else the newest of all.
func Pick(all []timeline.Session, n int, who Who, where string) (timeline.Session, error) {
	if len(all) == 0 {
		return timeline.Session{}, &NoFlowsError{Where: where}
	}
	if n != 0 {
		if n < 1 || n > len(all) {
			have := fmt.Sprintf("sessions 1 to %d", len(all))
			if len(all) == 1 {
				have = "only session 1"
			}
			return timeline.Session{}, &ChoiceError{fmt.Sprintf("--session %d: %s has %s (see pilotwire sessions)", n, where, have)}
		}
		s := all[n-1]
		if !who.Owns(s) {
			return timeline.Session{}, &ChoiceError{fmt.Sprintf("session %d belongs to %s, not %s", n, whose(s), who)}
		}
		return s, nil
	}
	for _, s := range slices.Backward(all) {
		if who.Owns(s) {
			return s, nil
		}
	}
	var owners []string
	for _, s := range all {
		if o := whose(s); !slices.Contains(owners, o) {
			owners = append(owners, o)
		}
	}
	if len(owners) > 5 {
		owners = append(owners[:5], "…")
	}
	return timeline.Session{}, fmt.Errorf("no sessions of %s in %s (clients: %s): %w", who, where,
		strings.Join(owners, ", "), flow.ErrNotFound)
}

// Find finds the session a report is about (see List and
// Pick). Its flows are read after, by Flows, only in its time
// range.
func Find(ctx context.Context, src Source, gap time.Duration, n int, who Who) (timeline.Session, error) {
	all, err := List(ctx, src, gap)
	if err != nil {
		return timeline.Session{}, err
	}
	return Pick(all, n, who, src.Name())
}

// Flows calls fn for each flow of session s, in start order (the
// PAC answers inside it too, see timeline.Session.Contains), one at a time:
// nothing holds the session's flows, which for a million flows would be
// some 400 MiB. fields are the fields fn needs (see flow.Filter.Fields;
// zero for all). fn must not keep f.
func Flows(ctx context.Context, src Source, s timeline.Session, fields flow.Fields, fn func(f *flow.Flow)) error {
	n := 0
	f := flow.Filter{Client: s.Client, Proxy: s.Proxy, Since: s.Start, Until: s.End.Add(time.Nanosecond), Fields: fields}
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

// Timeline builds the timeline of session s: its flows go straight from
// src into a timeline.Builder, one at a time (see Flows), and the result
// carries the session's number and name.
func Timeline(ctx context.Context, src Source, s timeline.Session, cat *catalog.Catalog, opt timeline.Options) (*timeline.Timeline, error) {
	return build(ctx, src, s, cat, opt, nil)
}

// build is Timeline, handing each flow to also too when it is not nil.
func build(ctx context.Context, src Source, s timeline.Session, cat *catalog.Catalog, opt timeline.Options, also func(*flow.Flow)) (*timeline.Timeline, error) {
	b, err := timeline.NewBuilder(cat, opt)
	if err != nil {
		return nil, err
	}
	b.Grow(int(s.Flows))
	add := b.Add
	if also != nil {
		add = func(f *flow.Flow) { b.Add(f); also(f) }
	}
	if err := Flows(ctx, src, s, timeline.FlowFields, add); err != nil {
		return nil, err
	}
	tl := b.Timeline()
	tl.Session.Number, tl.Session.Name, tl.Session.Proxy = s.Number, s.Name, s.Proxy
	return tl, nil
}

// DiffSide reads session s once into what diff.Compare needs of it: its
// timeline and the bytes exchanged with each of its hosts.
func DiffSide(ctx context.Context, src Source, s timeline.Session, cat *catalog.Catalog, opt timeline.Options) (diff.Side, error) {
	hosts := map[string]int64{}
	tl, err := build(ctx, src, s, cat, opt, func(f *flow.Flow) {
		if f.Kind != flow.KindPAC && f.Host != "" {
			hosts[f.Host] += f.Bytes()
		}
	})
	if err != nil {
		return diff.Side{}, err
	}
	return diff.Side{Timeline: tl, Hosts: hosts, Name: src.Name()}, nil
}

// IncompleteNotes says, by session number, which sessions hold flows of
// an import that began and did not end (flow.Store.UnfinishedImports: an
// import killed half way, or one running now), so that a session cut short
// does not pass for a whole run. It costs a second Brief read of the store,
// made only when such an import exists; a capture file read directly has
// none.
func IncompleteNotes(ctx context.Context, src Source, sessions []timeline.Session) (map[int]string, error) {
	ss, ok := src.(storeSource)
	if !ok || len(sessions) == 0 {
		return nil, nil
	}
	unfinished, err := ss.st.UnfinishedImports(ctx)
	if err != nil || len(unfinished) == 0 {
		return nil, err
	}
	byFile := map[string]flow.UnfinishedImport{}
	for _, u := range unfinished {
		byFile[u.SourceFile] = u
	}
	byClient := map[string][]int{}
	for i, s := range sessions {
		byClient[s.Client] = append(byClient[s.Client], i)
	}
	files := map[int][]string{} // session index → unfinished files it holds flows of
	err = src.Each(ctx, flow.Filter{Brief: true}, func(f *flow.Flow) error {
		if f.SourceFile == "" {
			return nil
		}
		if _, ok := byFile[f.SourceFile]; !ok {
			return nil
		}
		for _, i := range byClient[f.Client] {
			if sessions[i].Contains(f) && !slices.Contains(files[i], f.SourceFile) {
				files[i] = append(files[i], f.SourceFile)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read flows from %s: %w", src.Name(), err)
	}
	notes := map[int]string{}
	for i, fs := range files {
		var parts []string
		for _, f := range fs {
			u := byFile[f]
			what := fmt.Sprintf("import interrupted after %d flows", u.Flows)
			if len(fs) > 1 {
				what += " (" + f + ")"
			}
			parts = append(parts, what)
		}
		slices.Sort(parts)
		notes[sessions[i].Number] = "incomplete: " + strings.Join(parts, "; ")
	}
	return notes, nil
}

// Against reads session s once and says what an allowlist would have done
// to it, without replaying it: each flow that decide denies (its host and
// port, as a proxy would ask) is refused with the rule as Reason in a
// second timeline, which timeline.CompareAgainst sets against the
// captured one. Flows the proxy itself served (its PAC file) are never
// denied.
func Against(ctx context.Context, src Source, s timeline.Session, cat *catalog.Catalog, opt timeline.Options,
	decide func(host string, port int) (bool, string)) (*timeline.Against, error) {
	after, err := timeline.NewBuilder(cat, opt)
	if err != nil {
		return nil, err
	}
	before, err := build(ctx, src, s, cat, opt, func(f *flow.Flow) {
		g := *f
		if g.Kind != flow.KindPAC && g.Kind != flow.KindLost && g.Kind != flow.KindDNS {
			if ok, rule := decide(catalog.FlowHost(g), g.Port); !ok {
				g.Decision, g.Reason, g.Status, g.Error = flow.DecisionDenied, rule, 403, ""
				g.BytesUp, g.BytesDown = 0, 0
			}
		}
		after.Add(&g)
	})
	if err != nil {
		return nil, err
	}
	return timeline.CompareAgainst(before, after.Timeline(), opt.Rules)
}

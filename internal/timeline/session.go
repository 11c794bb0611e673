package timeline

import (
	"sort"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// DefaultGap is the idle time that ends a provisioning run when the user
// gives none: a device that says nothing for half an hour has finished (or
// been switched off), and a reboot takes far less.
const DefaultGap = 30 * time.Minute

// Session is one provisioning run of one client: its flows from the first to
// the last, with no idle gap longer than the splitter's gap, or all its flows
// carrying one explicit session name.
type Session struct {
	// Number is the session's 1-based position among all sessions sorted by
	// start (then proxy, client, name), so "--session 3" names the same run
	// as long as no older flows are added.
	Number int       `json:"number"`
	Proxy  string    `json:"proxy,omitempty"` // the pilotwire that recorded it (flow.Flow.Proxy)
	Client string    `json:"client"`
	Device string    `json:"device,omitempty"` // newest non-empty device label
	Name   string    `json:"name,omitempty"`   // the flows' explicit flow.Flow.Session, if any
	Start  time.Time `json:"start"`            // start of the first flow
	// End is the last moment of activity: the latest end (or start, for
	// open flows) of any of its flows.
	End   time.Time `json:"end"`
	Flows int64     `json:"flows"`
	Bytes int64     `json:"bytes"`
	// Lost counts the flows of the session that were seen but never
	// stored (flow.KindLost: the store could not be written for too long).
	Lost int64 `json:"lost,omitempty"`
}

// Duration is End-Start.
func (s Session) Duration() time.Duration { return s.End.Sub(s.Start) }

// Contains reports whether f belongs to s. Sessions of one client (of one
// proxy) and name never overlap in time, so proxy, client, name and start
// decide it. A PAC flow
// (flow.KindPAC) of the client inside the session's time belongs to it
// too, though it never made the session: the timeline shows it as one
// line.
func (s Session) Contains(f *flow.Flow) bool {
	return f.Client == s.Client && f.Proxy == s.Proxy && f.Session == s.Name && !f.Start.Before(s.Start) && !f.Start.After(s.End)
}

// Splitter cuts a stream of flows into sessions. Feed it flows in start
// order (as a flow.Store returns them) with Add, then call Sessions. It keeps
// one small record per session, not the flows, so it can run over a whole
// store.
type Splitter struct {
	gap  time.Duration
	open map[splitKey]*Session // the latest session of each client and name
	done []Session
}

// splitKey is whose sessions: devices behind different proxies may share
// an address.
type splitKey struct{ proxy, client, name string }

// NewSplitter returns a Splitter that ends a session after gap without
// activity. A gap <= 0 means DefaultGap. Flows with an explicit session name
// are grouped by that name and never split by time.
func NewSplitter(gap time.Duration) *Splitter {
	if gap <= 0 {
		gap = DefaultGap
	}
	return &Splitter{gap: gap, open: make(map[splitKey]*Session)}
}

// Add accounts for one flow. Flows must arrive in start order for the gap
// rule to see the run as the device lived it; an out-of-order flow joins
// the client's current session when it falls inside or just before it.
//
// A flow of kind flow.KindPAC is pilotwire's own answer (PAC file, WPAD,
// status page), not the device's conversation: it joins no session and
// never starts or extends one. A report still shows one that falls inside
// a session (see Session.Contains).
func (sp *Splitter) Add(f *flow.Flow) {
	if f.Kind == flow.KindPAC {
		return
	}
	k := splitKey{f.Proxy, f.Client, f.Session}
	last := f.Start
	if f.End.After(last) {
		last = f.End
	}
	s := sp.open[k]
	if s != nil && f.Session == "" && f.Start.Sub(s.End) > sp.gap {
		sp.done = append(sp.done, *s)
		s = nil
	}
	if s == nil {
		s = &Session{Proxy: f.Proxy, Client: f.Client, Name: f.Session, Start: f.Start, End: last}
		sp.open[k] = s
	}
	if f.Start.Before(s.Start) {
		s.Start = f.Start
	}
	if last.After(s.End) {
		s.End = last
	}
	if f.Device != "" {
		s.Device = f.Device
	}
	if f.Kind == flow.KindLost {
		s.Lost += f.Lost
	} else {
		s.Flows++
		s.Bytes += f.Bytes()
	}
}

// AddActivity accounts for a window of activity (flow.Store.Activity) as
// Add would for its flows. Windows must arrive in the order a store gives
// them; the sessions are then those of Add over the same flows, as long
// as the splitter's gap is at least flow.ActivityWindow (no gap that ends
// a session fits inside one window). It reports whether it could:
// false, and nothing added, when the gap is shorter.
func (sp *Splitter) AddActivity(a *flow.Activity) bool {
	if sp.gap < flow.ActivityWindow {
		return false
	}
	k := splitKey{a.Proxy, a.Client, a.Session}
	s := sp.open[k]
	if s != nil && a.Session == "" && a.First.Sub(s.End) > sp.gap {
		sp.done = append(sp.done, *s)
		s = nil
	}
	if s == nil {
		s = &Session{Proxy: a.Proxy, Client: a.Client, Name: a.Session, Start: a.First, End: a.Last}
		sp.open[k] = s
	}
	if a.First.Before(s.Start) {
		s.Start = a.First
	}
	if a.Last.After(s.End) {
		s.End = a.Last
	}
	if a.Device != "" {
		s.Device = a.Device
	}
	s.Flows += a.Flows
	s.Bytes += a.Bytes
	s.Lost += a.Lost
	return true
}

// Sessions returns every session seen so far, numbered, oldest first.
func (sp *Splitter) Sessions() []Session {
	out := make([]Session, 0, len(sp.done)+len(sp.open))
	out = append(out, sp.done...)
	for _, s := range sp.open {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		if a.Proxy != b.Proxy {
			return a.Proxy < b.Proxy
		}
		if a.Client != b.Client {
			return a.Client < b.Client
		}
		return a.Name < b.Name
	})
	for i := range out {
		out[i].Number = i + 1
	}
	return out
}

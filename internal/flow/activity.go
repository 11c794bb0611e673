package flow

import (
	"cmp"
	"slices"
	"time"
)

// ActivityWindow is the stretch of time an Activity sums up: flows are
// grouped by the window their start falls in (Unix time divided by it).
// Splitting sessions by activity instead of by flows gives the same sessions
// whenever the idle gap that ends a session is at least this long, since no
// such gap then fits inside one window.
const ActivityWindow = time.Minute

// Activity is what one client of one pilotwire (under one explicit session
// name) did in one
// ActivityWindow: enough to split flows into sessions without reading them.
// KindPAC flows are left out (they are the proxy's traffic); KindLost
// flows count their Lost, not as flows.
type Activity struct {
	Proxy   string // the pilotwire that recorded it (Flow.Proxy)
	Client  string
	Session string // the flows' explicit session name, if any
	Window  int64  // the window's number (WindowOf)
	First   time.Time
	// Last is the latest moment of activity: the latest end (or start, of
	// an open flow) of the window's flows.
	Last  time.Time
	Flows int64 // flows, not counting KindLost records
	Bytes int64 // their bytes, both ways
	Lost  int64 // flows dropped before they were stored (KindLost)
	// Device is the label of the newest flow that has one (by start, then
	// the order the flows came in), DeviceAt that flow's start.
	Device   string
	DeviceAt time.Time
}

// WindowOf is the number of the ActivityWindow t falls in:
// floor(UnixNano / ActivityWindow).
func WindowOf(t time.Time) int64 {
	ns, w := t.UnixNano(), int64(ActivityWindow)
	if ns < 0 && ns%w != 0 {
		return ns/w - 1
	}
	return ns / w
}

// LastMoment is when f was last active: its end, or its start while open.
func (f *Flow) LastMoment() time.Time {
	if f.End.After(f.Start) {
		return f.End
	}
	return f.Start
}

// ActivityOf sums flows up as a Store's Activity does: one Activity per
// proxy, client, session name and window, in order of First, Proxy,
// Client, Session.
// Flows count in the order given; give them by start (then ID), as stores
// return them, for Device to be the newest label.
func ActivityOf(flows []Flow) []Activity {
	var acc ActivitySum
	for i := range flows {
		acc.Add(&flows[i])
	}
	return acc.Activity()
}

// ActivitySum sums flows up into Activity one at a time (see ActivityOf).
// The zero value is ready to use.
type ActivitySum struct {
	by  map[activityKey]int
	out []Activity
}

type activityKey struct {
	proxy, client, session string
	window                 int64
}

// Add counts f.
func (acc *ActivitySum) Add(f *Flow) {
	if f.Kind == KindPAC {
		return
	}
	if acc.by == nil {
		acc.by = map[activityKey]int{}
	}
	k := activityKey{f.Proxy, f.Client, f.Session, WindowOf(f.Start)}
	j, ok := acc.by[k]
	if !ok {
		j = len(acc.out)
		acc.by[k] = j
		acc.out = append(acc.out, Activity{Proxy: f.Proxy, Client: f.Client, Session: f.Session, Window: k.window, First: f.Start, Last: f.LastMoment()})
	}
	acc.out[j].add(f)
}

// Merge adds a, the activity of some flows (a store's row of activity),
// to the sum: a window met again is merged into the one met before. Like
// Add, it comes before Activity.
func (acc *ActivitySum) Merge(a *Activity) {
	if acc.by == nil {
		acc.by = map[activityKey]int{}
	}
	k := activityKey{a.Proxy, a.Client, a.Session, a.Window}
	if j, ok := acc.by[k]; ok {
		acc.out[j].Merge(a)
		return
	}
	acc.by[k] = len(acc.out)
	acc.out = append(acc.out, *a)
}

// Activity returns what was added, in Store.Activity's order.
func (acc *ActivitySum) Activity() []Activity {
	SortActivity(acc.out)
	acc.by = nil // the indexes moved
	return acc.out
}

// Merge adds b, the activity of other flows of a's proxy, client, session
// and window, to a.
func (a *Activity) Merge(b *Activity) {
	if b.First.Before(a.First) {
		a.First = b.First
	}
	if b.Last.After(a.Last) {
		a.Last = b.Last
	}
	a.Flows += b.Flows
	a.Bytes += b.Bytes
	a.Lost += b.Lost
	if b.Device != "" && (a.Device == "" || !b.DeviceAt.Before(a.DeviceAt)) {
		a.Device, a.DeviceAt = b.Device, b.DeviceAt
	}
}

// add counts f in a. f is in a's client, session and window.
func (a *Activity) add(f *Flow) {
	if f.Start.Before(a.First) {
		a.First = f.Start
	}
	if l := f.LastMoment(); l.After(a.Last) {
		a.Last = l
	}
	if f.Kind == KindLost {
		a.Lost += f.Lost
	} else {
		a.Flows++
		a.Bytes += f.Bytes()
	}
	if f.Device != "" && (a.Device == "" || !f.Start.Before(a.DeviceAt)) {
		a.Device, a.DeviceAt = f.Device, f.Start
	}
}

// SortActivity puts activity in the order Store.Activity gives it.
func SortActivity(as []Activity) {
	slices.SortStableFunc(as, func(a, b Activity) int {
		if c := a.First.Compare(b.First); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Proxy, b.Proxy); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Client, b.Client); c != 0 {
			return c
		}
		return cmp.Compare(a.Session, b.Session)
	})
}

// MatchActivity reports whether f selects a: its Proxy, its Client (the address
// only: a window without a label is still the labelled client's), Since
// and Until (by the window: a window that overlaps [Since, Until) is
// selected whole).
func (f *Filter) MatchActivity(a *Activity) bool {
	if f.Client != "" && a.Client != f.Client || f.Proxy != "" && a.Proxy != f.Proxy {
		return false
	}
	if !f.Since.IsZero() && WindowOf(f.Since) > a.Window {
		return false
	}
	if !f.Until.IsZero() && !a.First.Before(f.Until) {
		return false
	}
	return true
}

// Package diff compares two sessions: why did Office take 5 minutes in one
// run and 30 in another? It owns the comparison of two timelines (phases,
// services, milestones, hosts and refusals, biggest differences first) and
// nothing else: the timelines come from package session, the words and
// pictures from package report.
//
// It imports timeline and flow only; never a store, session or report.
package diff

import (
	"cmp"
	"slices"
	"time"

	"github.com/pilotwire/pilotwire/internal/timeline"
)

// Side is one of the two sessions: its timeline and the bytes it
// exchanged with each host (a band of the timeline lists ten hosts at
// most; the comparison of hosts needs them all).
type Side struct {
	Timeline *timeline.Timeline
	Hosts    map[string]int64 // host → bytes both ways
	Name     string           // where the session came from: a store path or a capture file
}

// Diff is the comparison of session A with session B. Every list is in
// order of the size of its difference, biggest first.
type Diff struct {
	A, B       Summary
	Phases     []PhaseRow
	Services   []ServiceRow
	Milestones []MilestoneRow
	Hosts      []HostRow    // hosts seen in one session only
	Problems   []ProblemRow // refusals and failures seen in one session only
}

// Summary is one session as a whole.
type Summary struct {
	Name     string
	Timeline *timeline.Timeline // the session's own, for drawing it
	Session  timeline.Session
	Duration time.Duration
	// Provisioning is the timeline's verdict: phases exist only when it
	// is true.
	Provisioning bool
}

// Presence says which sessions a row is in.
type Presence string

const (
	Both  Presence = "both"
	OnlyA Presence = "a"
	OnlyB Presence = "b"
)

// PhaseRow compares one provisioning phase.
type PhaseRow struct {
	ID, Name string
	In       Presence
	A, B     time.Duration // how long the phase took (0 where absent)
	Delta    time.Duration // B - A
}

// ServiceRow compares one service's traffic.
type ServiceRow struct {
	ID, Name, Color string
	In              Presence
	A, B            ServiceUse
	// Delta is the difference of Span, B - A: how much longer the service
	// kept the device busy.
	Delta time.Duration
}

// ServiceUse is one service in one session.
type ServiceUse struct {
	Flows int64
	Bytes int64
	// Span is from the service's first flow to its last activity.
	Span time.Duration
	// Throughput is of its content transfers, bytes per second (0: none).
	Throughput float64
}

// MilestoneRow compares when one milestone fired.
type MilestoneRow struct {
	ID, Title string
	In        Presence
	A, B      time.Duration // offsets from each session's t0 (0 where absent)
	Moved     time.Duration // B - A
}

// HostRow is a host only one session talked to.
type HostRow struct {
	Host    string
	Service string // the timeline's service ID of the host, "" when unknown
	In      Presence
	Bytes   int64
}

// ProblemRow is a refusal or failure (by kind, host and detail) that only
// one session had.
type ProblemRow struct {
	Kind, Host, Detail string
	In                 Presence
	Flows              int
	// Blocks is the milestone the failure kept from firing, when any;
	// BlocksFired says it fired anyway, on other flows.
	Blocks, BlocksTitle string
	BlocksFired         bool
}

// Compare compares a with b.
func Compare(a, b Side) *Diff {
	d := &Diff{A: summary(a), B: summary(b)}
	d.Phases = phases(a.Timeline, b.Timeline)
	d.Services = services(a.Timeline, b.Timeline)
	d.Milestones = milestones(a.Timeline, b.Timeline)
	d.Hosts = hosts(a, b)
	d.Problems = problems(a.Timeline, b.Timeline)
	return d
}

func summary(s Side) Summary {
	return Summary{Name: s.Name, Timeline: s.Timeline, Session: s.Timeline.Session, Duration: s.Timeline.Session.Duration(),
		Provisioning: s.Timeline.Provisioning}
}

func abs(d time.Duration) time.Duration { return max(d, -d) }

// order puts rows found in one session only first (the biggest difference
// there is), then the rows of both by the size of their difference; ties
// keep the timeline's order.
func order[T any](rows []T, in func(T) Presence, size func(T) int64) {
	slices.SortStableFunc(rows, func(x, y T) int {
		if bx, by := in(x) == Both, in(y) == Both; bx != by {
			if bx {
				return 1
			}
			return -1
		}
		return cmp.Compare(size(y), size(x))
	})
}

func phases(a, b *timeline.Timeline) []PhaseRow {
	var rows []PhaseRow
	index := map[string]int{}
	for _, p := range a.Phases {
		if _, dup := index[p.ID]; dup {
			continue // a phase seen twice (a retry) is compared by its first stretch
		}
		index[p.ID] = len(rows)
		rows = append(rows, PhaseRow{ID: p.ID, Name: p.Name, In: OnlyA, A: p.Duration()})
	}
	seen := map[string]bool{}
	for _, p := range b.Phases {
		if seen[p.ID] {
			continue
		}
		seen[p.ID] = true
		if i, ok := index[p.ID]; ok {
			rows[i].In, rows[i].B = Both, p.Duration()
			continue
		}
		rows = append(rows, PhaseRow{ID: p.ID, Name: p.Name, In: OnlyB, B: p.Duration()})
	}
	for i := range rows {
		rows[i].Delta = rows[i].B - rows[i].A
	}
	order(rows, func(r PhaseRow) Presence { return r.In }, func(r PhaseRow) int64 { return int64(abs(r.Delta)) })
	return rows
}

func use(b *timeline.Band) ServiceUse {
	return ServiceUse{Flows: b.Flows, Bytes: b.Bytes(), Span: b.Last.Sub(b.First), Throughput: b.Throughput}
}

func services(a, b *timeline.Timeline) []ServiceRow {
	var rows []ServiceRow
	index := map[string]int{}
	for i := range a.Services {
		band := &a.Services[i]
		index[band.Service.ID] = len(rows)
		rows = append(rows, ServiceRow{ID: band.Service.ID, Name: band.Service.Name, Color: band.Service.Color, In: OnlyA, A: use(band)})
	}
	for i := range b.Services {
		band := &b.Services[i]
		if j, ok := index[band.Service.ID]; ok {
			rows[j].In, rows[j].B = Both, use(band)
			continue
		}
		rows = append(rows, ServiceRow{ID: band.Service.ID, Name: band.Service.Name, Color: band.Service.Color, In: OnlyB, B: use(band)})
	}
	for i := range rows {
		rows[i].Delta = rows[i].B.Span - rows[i].A.Span
	}
	// Services in one session only are ordered by their bytes; the others
	// by how much longer or shorter they kept the device busy.
	order(rows, func(r ServiceRow) Presence { return r.In }, func(r ServiceRow) int64 {
		if r.In != Both {
			return r.A.Bytes + r.B.Bytes
		}
		return int64(abs(r.Delta))
	})
	return rows
}

func milestones(a, b *timeline.Timeline) []MilestoneRow {
	var rows []MilestoneRow
	index := map[string]int{}
	for _, m := range a.Milestones {
		if _, dup := index[m.ID]; dup {
			continue // compared by when each first fired
		}
		index[m.ID] = len(rows)
		rows = append(rows, MilestoneRow{ID: m.ID, Title: m.Title, In: OnlyA, A: m.Offset})
	}
	seen := map[string]bool{}
	for _, m := range b.Milestones {
		if seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		if i, ok := index[m.ID]; ok {
			rows[i].In, rows[i].B = Both, m.Offset
			continue
		}
		rows = append(rows, MilestoneRow{ID: m.ID, Title: m.Title, In: OnlyB, B: m.Offset})
	}
	for i := range rows {
		rows[i].Moved = rows[i].B - rows[i].A
	}
	order(rows, func(r MilestoneRow) Presence { return r.In }, func(r MilestoneRow) int64 { return int64(abs(r.Moved)) })
	return rows
}

// serviceOf maps each host a timeline names to its service.
func serviceOf(tl *timeline.Timeline) map[string]string {
	m := map[string]string{}
	for _, b := range tl.Services {
		for _, h := range b.Hosts {
			m[h.Host] = b.Service.ID
		}
	}
	for _, ms := range tl.Milestones {
		for _, h := range ms.Hosts {
			m[h.Host] = h.Service
		}
	}
	for _, at := range tl.Attention {
		m[at.Host.Host] = at.Host.Service
	}
	return m
}

func hosts(a, b Side) []HostRow {
	var rows []HostRow
	sa, sb := serviceOf(a.Timeline), serviceOf(b.Timeline)
	for h, n := range a.Hosts {
		if _, ok := b.Hosts[h]; !ok {
			rows = append(rows, HostRow{Host: h, Service: sa[h], In: OnlyA, Bytes: n})
		}
	}
	for h, n := range b.Hosts {
		if _, ok := a.Hosts[h]; !ok {
			rows = append(rows, HostRow{Host: h, Service: sb[h], In: OnlyB, Bytes: n})
		}
	}
	slices.SortFunc(rows, func(x, y HostRow) int {
		return cmp.Or(cmp.Compare(y.Bytes, x.Bytes), cmp.Compare(x.Host, y.Host), cmp.Compare(x.In, y.In))
	})
	return rows
}

type problemKey struct{ kind, host, detail string }

func problems(a, b *timeline.Timeline) []ProblemRow {
	keys := func(tl *timeline.Timeline) map[problemKey]timeline.Attention {
		m := map[problemKey]timeline.Attention{}
		for _, at := range tl.Attention {
			if at.Kind == timeline.AttentionRefused || at.Kind == timeline.AttentionFailed {
				m[problemKey{at.Kind, at.Host.Host, at.Detail}] = at
			}
		}
		return m
	}
	ka, kb := keys(a), keys(b)
	var rows []ProblemRow
	add := func(from, other map[problemKey]timeline.Attention, in Presence) {
		for k, at := range from {
			if _, ok := other[k]; !ok {
				rows = append(rows, ProblemRow{Kind: k.kind, Host: k.host, Detail: k.detail, In: in, Flows: at.Flows,
					Blocks: at.Blocks, BlocksTitle: at.BlocksTitle, BlocksFired: at.BlocksFired})
			}
		}
	}
	add(ka, kb, OnlyA)
	add(kb, ka, OnlyB)
	// Failures that kept a milestone from firing first, then by flows.
	slices.SortFunc(rows, func(x, y ProblemRow) int {
		if bx, by := x.Blocks != "", y.Blocks != ""; bx != by {
			if bx {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(y.Flows, x.Flows), cmp.Compare(x.Host, y.Host), cmp.Compare(x.Kind, y.Kind),
			cmp.Compare(x.Detail, y.Detail), cmp.Compare(x.In, y.In))
	})
	return rows
}

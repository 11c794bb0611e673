package timeline

import (
	"slices"
	"time"
)

// phases places the phase boundaries at their milestones and measures what
// each phase spent on which service.
//
// A session that does not look like provisioning has no phases: a PC in
// ordinary use is not in "OOBE and Autopilot".
func (b *Builder) phases() {
	if !b.tl.Provisioning {
		return
	}
	s := b.tl.Session
	var out []Phase
	for _, pr := range b.rules.Phases {
		var at time.Time
		var by string
		for _, id := range pr.Start {
			t, ok := b.firedAt[id]
			if id == SessionStart {
				t, ok = s.Start, true
			}
			if ok && (at.IsZero() || t.Before(at)) {
				at, by = t, id
			}
		}
		if at.IsZero() {
			continue // the phase did not happen, or could not be seen
		}
		// A phase whose milestone came before the previous phase's is out
		// of order (a retry, a second sign-in): it does not start a phase.
		if n := len(out); n > 0 && at.Before(out[n-1].Start) {
			continue
		}
		out = append(out, Phase{ID: pr.ID, Name: pr.Name, About: pr.About, Start: at, Milestone: by})
	}
	for i := range out {
		out[i].End = s.End
		if i+1 < len(out) {
			out[i].End = out[i+1].Start
		}
		out[i].StartOffset = out[i].Start.Sub(b.tl.T0)
		out[i].EndOffset = out[i].End.Sub(b.tl.T0)
	}
	if len(out) == 0 {
		return
	}
	// One more pass: each flow counts in the phase in which it started.
	type acc struct {
		Share
		used       bool
		start, end int64
	}
	shares := make([][]acc, len(out))
	starts := make([]int64, len(out)) // Unix nanoseconds
	ends := make([]int64, len(out))
	for i := range shares {
		shares[i] = make([]acc, len(b.bands))
		starts[i], ends[i] = nanos(out[i].Start), nanos(out[i].End)
	}
	p := 0
	for i := range b.recs {
		f := &b.recs[i]
		for p+1 < len(out) && f.start >= starts[p+1] {
			p++
		}
		a := &shares[p][b.hostList[f.host].band]
		out[p].Flows++
		out[p].Bytes += f.up + f.down
		a.Flows++
		a.Bytes += f.up + f.down
		end := min(lastMoment(f), ends[p])
		switch {
		case !a.used:
			a.used, a.start, a.end = true, f.start, end
		case f.start > a.end:
			a.Active += sub(a.end, a.start)
			a.start, a.end = f.start, end
		case end > a.end:
			a.end = end
		}
	}
	for i := range out {
		for j := range shares[i] {
			a := &shares[i][j]
			if !a.used {
				continue
			}
			a.Active += sub(a.end, a.start)
			a.Service = b.bands[j].Service
			out[i].Services = append(out[i].Services, a.Share)
		}
		slices.SortStableFunc(out[i].Services, func(x, y Share) int {
			switch {
			case x.Bytes > y.Bytes:
				return -1
			case x.Bytes < y.Bytes:
				return 1
			}
			return int(y.Active - x.Active)
		})
	}
	b.tl.Phases = out
}

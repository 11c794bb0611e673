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
func (b *builder) phases() {
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
		start, end time.Time
	}
	shares := make([][]acc, len(out))
	for i := range shares {
		shares[i] = make([]acc, len(b.bands))
	}
	p := 0
	for i := range b.flows {
		f := &b.flows[i]
		for p+1 < len(out) && !f.Start.Before(out[p+1].Start) {
			p++
		}
		a := &shares[p][b.bandOf[i]]
		out[p].Flows++
		out[p].Bytes += f.Bytes()
		a.Flows++
		a.Bytes += f.Bytes()
		end := lastMoment(f)
		if end.After(out[p].End) {
			end = out[p].End
		}
		switch {
		case !a.used:
			a.used, a.start, a.end = true, f.Start, end
		case f.Start.After(a.end):
			a.Active += a.end.Sub(a.start)
			a.start, a.end = f.Start, end
		case end.After(a.end):
			a.end = end
		}
	}
	for i := range out {
		for j := range shares[i] {
			a := &shares[i][j]
			if !a.used {
				continue
			}
			a.Active += a.end.Sub(a.start)
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

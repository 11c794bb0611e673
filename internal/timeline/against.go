package timeline

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Denial is a host an allowlist would have denied in a session, and what
// that would have cost.
type Denial struct {
	Host HostRef
	// Rule is why, as the flows' Reason says it ("not in allowlist
	// allow.txt", "denied by denylist rule deny.txt:3 (…)").
	Rule  string
	Flows int
	// Offset is when its first denied flow started, from T0.
	Offset time.Duration
	// Blocks is the milestone the denied flows would have kept from
	// firing (a rule they match, and it is Lost), with its title; ""
	// when none.
	Blocks, BlocksTitle string
	// Hurts is the phase a failure of the host hurts, with its name.
	Hurts, HurtsName string
	// Stops says provisioning would stop or go wrong: the host hurts a
	// phase, or it blocks a milestone only provisioning shows.
	Stops bool
}

// Against is what an allowlist would have done to a session.
type Against struct {
	Denials []Denial // provisioning stoppers first, then in order of first flow
	// Lost are the milestones that fired in the capture but would not
	// have with the denials, in time order.
	Lost []Milestone
	// Phases are the names of the phases the denials hurt, those of
	// stoppers first, each once.
	Phases []string
	// DeniedFlows counts the flows the list would have denied.
	DeniedFlows int
}

// CompareAgainst compares a session's timeline as captured (before) with
// its timeline when the flows an allowlist denies are refused (after):
// the refusals after has that before had not are the denials; the
// milestones before has that after lacks are lost. rules are the rules
// both were built with (nil: the default ones). It is a pure function.
func CompareAgainst(before, after *Timeline, rules *Rules) (*Against, error) {
	if rules == nil {
		var err error
		if rules, err = DefaultRules(); err != nil {
			return nil, err
		}
	}
	provisioning := map[string]bool{}
	for _, r := range rules.Milestones {
		provisioning[r.ID] = r.Provisioning
	}
	had := map[attKey]bool{}
	for _, a := range before.Attention {
		if a.Kind == AttentionRefused {
			had[attKey{a.Kind, a.Host.Host, a.Detail}] = true
		}
	}
	out := &Against{}
	fired := map[string]int{}
	for _, m := range after.Milestones {
		fired[m.ID]++
	}
	for _, m := range before.Milestones {
		if fired[m.ID] > 0 {
			fired[m.ID]--
			continue
		}
		out.Lost = append(out.Lost, m)
	}
	lostID := map[string]bool{}
	for _, m := range out.Lost {
		lostID[m.ID] = true
	}
	for _, a := range after.Attention {
		if a.Kind != AttentionRefused || had[attKey{a.Kind, a.Host.Host, a.Detail}] {
			continue
		}
		d := Denial{Host: a.Host, Rule: strings.TrimPrefix(a.Detail, "refused by the proxy: "), Flows: a.Flows, Offset: a.Offset,
			Blocks: a.Blocks, BlocksTitle: a.BlocksTitle, Hurts: a.Hurts, HurtsName: a.HurtsName}
		if !lostID[d.Blocks] {
			// The milestone still fired, from other flows: these did
			// not keep it from happening.
			d.Blocks, d.BlocksTitle = "", ""
		}
		d.Stops = d.Hurts != "" || provisioning[d.Blocks]
		out.Denials = append(out.Denials, d)
		out.DeniedFlows += a.Flows
	}
	slices.SortStableFunc(out.Denials, func(a, b Denial) int {
		if a.Stops != b.Stops {
			if a.Stops {
				return -1
			}
			return 1
		}
		return 0
	})
	seen := map[string]bool{}
	for _, d := range out.Denials {
		if d.HurtsName != "" && !seen[d.HurtsName] {
			seen[d.HurtsName] = true
			out.Phases = append(out.Phases, d.HurtsName)
		}
	}
	slices.SortStableFunc(out.Lost, func(a, b Milestone) int { return cmp.Compare(a.Offset, b.Offset) })
	return out, nil
}

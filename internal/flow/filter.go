package flow

import (
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/pattern"
)

// Position is a place in the order every read gives flows in: by Start,
// then by ID. The zero Position is none.
type Position struct {
	Start time.Time
	ID    int64
}

// IsZero reports whether p is no position.
func (p Position) IsZero() bool { return p.ID == 0 && p.Start.IsZero() }

// PositionOf is the position of f.
func PositionOf(f *Flow) Position { return Position{Start: f.Start, ID: f.ID} }

// after reports whether p comes after f.
func (p Position) after(f *Flow) bool {
	fs, ps := f.Start.UnixNano(), p.Start.UnixNano()
	return fs < ps || fs == ps && f.ID < p.ID
}

// Match reports whether f selects fl: the one definition of what a Filter
// means, which every Store follows (a store that filters in its own query
// language is tested against Match). Limit, Newest, Brief and Fields say
// how many and in what form, not which, so Match ignores them.
//
//   - Client: fl.Client or fl.Device equals it.
//   - Hosts: fl.Host matches one of them (the host-pattern language of
//     package pattern).
//   - Proxy: equal.
//   - Source: equal.
//   - Since, Until: Since <= fl.Start < Until.
//   - AfterID: fl.ID > AfterID.
//   - Before: fl comes before it by (Start, ID).
//   - Text: fl.Host or fl.URL holds it, ASCII letters compared in either case.
//   - Problems: Judge says fl was refused or failed.
func (f *Filter) Match(fl *Flow) bool {
	switch {
	case f.Client != "" && fl.Client != f.Client && fl.Device != f.Client,
		f.Proxy != "" && fl.Proxy != f.Proxy,
		f.Source != "" && fl.Source != f.Source,
		f.AfterID > 0 && fl.ID <= f.AfterID,
		!f.Since.IsZero() && fl.Start.Before(f.Since),
		!f.Until.IsZero() && !fl.Start.Before(f.Until),
		!f.Before.IsZero() && !f.Before.after(fl),
		f.Text != "" && !containsFold(fl.Host, f.Text) && !containsFold(fl.URL, f.Text):
		return false
	}
	if len(f.Hosts) > 0 && !matchAny(f.Hosts, fl.Host) {
		return false
	}
	if f.Problems {
		if out, _ := Judge(fl); !out.Problem() {
			return false
		}
	}
	return true
}

func matchAny(ps []pattern.Pattern, host string) bool {
	for _, p := range ps {
		if p.Match(host) {
			return true
		}
	}
	return false
}

// containsFold reports whether s holds sub, ASCII letters compared in
// either case (what SQL's lower() and instr() can do too); other bytes
// compare as they are.
func containsFold(s, sub string) bool {
	if len(sub) > len(s) {
		return false
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		if equalFoldASCII(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func equalFoldASCII(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// LowerASCII lower-cases the ASCII letters of s and leaves other bytes as
// they are: Filter.Text's folding, for a store to fold with.
func LowerASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

package flow

import "strings"

// Match reports whether f selects fl: the one definition of what a Filter
// means, which every Store follows (a store that filters in its own query
// language is tested against Match). Limit, Newest and Brief say how many
// and in what form, not which, so Match ignores them.
//
//   - Client: fl.Client or fl.Device equals it.
//   - Host: compared with fl.Host in lower case; a pattern with a '*' is a
//     glob (see MatchHostGlob), one without is compared whole ('?' alone is
//     not special).
//   - Source: equal.
//   - Since, Until: Since <= fl.Start < Until.
//   - AfterID: fl.ID > AfterID.
func (f *Filter) Match(fl *Flow) bool {
	switch {
	case f.Client != "" && fl.Client != f.Client && fl.Device != f.Client,
		f.Source != "" && fl.Source != f.Source,
		f.AfterID > 0 && fl.ID <= f.AfterID,
		!f.Since.IsZero() && fl.Start.Before(f.Since),
		!f.Until.IsZero() && !fl.Start.Before(f.Until):
		return false
	case f.Host == "":
		return true
	}
	host := strings.ToLower(f.Host)
	if strings.Contains(host, "*") {
		return MatchHostGlob(host, fl.Host)
	}
	return fl.Host == host
}

// MatchHostGlob reports whether host matches pattern, where '*' matches any
// run of bytes (dots too), '?' any one byte, and everything else only
// itself: SQLite's GLOB, for a pattern whose '[' is literal. Host names are
// ASCII (IDNA), so bytes are characters.
func MatchHostGlob(pattern, host string) bool {
	// The classic linear matcher: on a mismatch, go back to just after
	// the last '*' and let it swallow one more byte.
	p, h := 0, 0
	star, mark := -1, 0
	for h < len(host) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == host[h]) && pattern[p] != '*':
			p++
			h++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, h
			p++
		case star >= 0:
			mark++
			p, h = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Package pattern owns pilotwire's one host-pattern language: the patterns
// of catalog entries, of timeline rules (milestones.yaml and user rule
// files), of the --host filter (flow.Filter.Host) and of allowlists all
// mean the same thing, because they are all parsed and matched here.
//
// It imports nothing of the project, so that flow, the vocabulary every
// other package shares, may use it.
//
// # The language
//
// A pattern is a DNS name whose labels are matched one by one, never as a
// substring of the whole name. Letters compare case-insensitively, a
// trailing dot is ignored, and Unicode (IDNA) labels are compared in their
// ASCII form, in patterns and hosts alike.
//
//	ztd.dds.microsoft.com       a label without '*' or '?' is literal: exactly this host
//	*.manage.microsoft.com      a label that is '*' alone stands for one or more whole
//	                            labels: any host under manage.microsoft.com, not
//	                            manage.microsoft.com itself
//	fef.*.manage.microsoft.com  ... also inside a pattern: fef.msua01.manage.microsoft.com
//	                            and fef.a.b.manage.microsoft.com
//	wpad.*                      ... and last, where it stands for zero or more labels:
//	                            the name under any DNS search suffix, or none
//	                            (wpad, wpad.corp.example)
//	kv*.b.c, *-my.b.c           '*' inside a label is any run of characters within
//	                            that label (never a dot)
//	h?.b.c                      '?' is exactly one character within a label
//	fef.?*.manage.microsoft.com so '?*' is exactly one label
//
// An IP address is a pattern too, matching that address only: an IPv4
// address is four literal labels (so 10.0.0.* is every address in
// 10.0.0.0/24), an IPv6 address is compared as an address
// (2001:db8::1 and [2001:DB8:0::1] are one pattern).
//
// Nothing else is special. A pattern holds letters, digits, '-', '_', '.',
// '*' and '?'; '**' (which would mean no more than '*') and a pattern that
// is '*' alone (every host) are refused, as are empty labels and names
// longer than DNS allows.
//
// The last '*' label is "zero or more" because there it stands for a DNS
// search suffix, which a bare name lacks; a first or inner one stands for
// the host's own labels, and a pattern "under" a domain does not mean the
// domain itself.
package pattern

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Pattern is a parsed host pattern. The zero Pattern matches nothing.
// A Pattern is safe for concurrent use.
type Pattern struct {
	src string // normalized: lower-case ASCII, no trailing dot
	// ip is the address of an IPv6 pattern, which has no elems.
	ip netip.Addr
	// elems is the pattern as a sequence over the host's labels: each
	// element but a star matches one label; a star zero or more.
	elems []elem
}

type elem struct {
	kind byte
	text string // of a literal or a glob
}

// Element kinds.
const (
	kLiteral = iota // a literal label
	kGlob           // a label with '*' or '?' inside
	kOne            // any one label
	kStar           // zero or more labels
)

// MaxLen is the longest pattern or host name: a DNS name in presentation
// form without the final dot.
const MaxLen = 253

// maxLabel is the longest DNS label.
const maxLabel = 63

// Error is a pattern that Parse refused: the pattern, the byte offset in it
// where the trouble is, and why.
type Error struct {
	Pattern string
	Offset  int
	Reason  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("host pattern %q: %s (at offset %d)", e.Pattern, e.Reason, e.Offset)
}

// Parse reads a host pattern in the language of the package doc.
func Parse(s string) (Pattern, error) {
	bad := func(off int, format string, a ...any) (Pattern, error) {
		return Pattern{}, &Error{Pattern: s, Offset: off, Reason: fmt.Sprintf(format, a...)}
	}
	if strings.Contains(s, ":") {
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return bad(strings.Index(s, ":"), "character ':' is allowed only in an IPv6 address (a host pattern has no port)")
		}
		return Pattern{src: a.String(), ip: a}, nil
	}
	text := strings.TrimSuffix(s, ".")
	switch {
	case text == "":
		return bad(0, "empty pattern")
	case text == "*":
		return bad(0, "'*' alone matches every host")
	}
	var labels []string
	off := 0
	for l := range strings.SplitSeq(text, ".") {
		if l == "" {
			return bad(off, "empty label")
		}
		if hasNonASCII(l) {
			if strings.ContainsAny(l, "*?") {
				return bad(off, "label %q mixes Unicode and wildcards: write its ASCII (xn--) form", l)
			}
			a, err := idna.Lookup.ToASCII(l)
			if err != nil {
				return bad(off, "label %q is not a valid international name: %v", l, err)
			}
			l = a
		}
		l = strings.ToLower(l)
		for k := 0; k < len(l); k++ {
			if c := l[k]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '*' || c == '?') {
				return bad(off+k, "character %q is not allowed (letters, digits, '-', '_', '.', '*' and '?' are)", c)
			}
		}
		if k := strings.Index(l, "**"); k >= 0 {
			return bad(off+k, "'**' means no more than '*': write one")
		}
		if len(l) > maxLabel {
			return bad(off, "label longer than %d characters", maxLabel)
		}
		labels = append(labels, l)
		off += len(l) + 1
	}
	src := strings.Join(labels, ".")
	if len(src) > MaxLen {
		return bad(MaxLen, "longer than %d characters", MaxLen)
	}
	p := Pattern{src: src}
	for i, l := range labels {
		switch {
		case l == "*" && i == len(labels)-1:
			p.elems = append(p.elems, elem{kind: kStar})
		case l == "*":
			p.elems = append(p.elems, elem{kind: kOne}, elem{kind: kStar})
		case strings.ContainsAny(l, "*?"):
			p.elems = append(p.elems, elem{kind: kGlob, text: l})
		default:
			p.elems = append(p.elems, elem{kind: kLiteral, text: l})
		}
	}
	return p, nil
}

// MustParse is Parse for patterns written in the program; it panics on an
// error, so never call it on input.
func MustParse(s string) Pattern {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern in its normal form: lower case, ASCII, no
// trailing dot. Parse(p.String()) is p.
func (p Pattern) String() string { return p.src }

// IsZero reports whether p is the zero Pattern (which matches nothing).
func (p Pattern) IsZero() bool { return p.src == "" }

// Literal reports whether p has no wildcard: it matches one host only,
// the one String names.
func (p Pattern) Literal() bool { return !strings.ContainsAny(p.src, "*?") }

// Glob is a wider pattern for a store to narrow with before Match: an
// SQLite GLOB ('*' is any run of characters, dots too; '?' one character)
// that every host p matches also matches, in lower-case ASCII. Hosts it
// lets through may still not match p.
func (p Pattern) Glob() string {
	if p.ip.IsValid() {
		return p.src
	}
	// A last '*' label may stand for no label, and then the dot before
	// it is not there either.
	if s, ok := strings.CutSuffix(p.src, ".*"); ok {
		return s + "*"
	}
	return p.src
}

func hasNonASCII(s string) bool {
	for k := 0; k < len(s); k++ {
		if s[k] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// Match reports whether host matches p. host is a DNS name in any letter
// case, with or without a trailing dot, in Unicode or ASCII; a host that
// is not a DNS name (empty labels, spaces, a port) matches nothing, an
// IPv6 literal only the pattern of that address.
//
// Match does not allocate for a host already in lower-case ASCII.
func (p Pattern) Match(host string) bool {
	if p.src == "" {
		return false
	}
	if p.ip.IsValid() {
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		return err == nil && a == p.ip
	}
	host = strings.TrimSuffix(host, ".")
	if !plain(host) {
		var ok bool
		if host, ok = normalize(host); !ok {
			return false
		}
	}
	return p.match(host)
}

// plain reports whether host is already lower-case ASCII of the
// characters a name may hold, in non-empty labels of legal length.
func plain(host string) bool {
	if host == "" || len(host) > MaxLen {
		return false
	}
	start := 0
	for k := 0; k < len(host); k++ {
		c := host[k]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_':
		case c == '.':
			if k == start || k-start > maxLabel {
				return false
			}
			start = k + 1
		default:
			return false
		}
	}
	return len(host) > start && len(host)-start <= maxLabel
}

// normalize turns host into lower-case ASCII, converting IDNA labels.
func normalize(host string) (string, bool) {
	if hasNonASCII(host) {
		if len(host) > 4*MaxLen {
			return "", false
		}
		a, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return "", false
		}
		host = a
	}
	host = strings.ToLower(host)
	return host, plain(host)
}

// labelStarts holds the offsets where the labels of a normalized name
// start: at most 127 in its 253 bytes.
type labelStarts [128]uint8

// match is Match for a normalized host. It is the classic wildcard
// matcher run over labels instead of characters: elements that take one
// label each are matched in turn, and on a mismatch the last star takes
// one more label and the elements after it are tried again. That is
// correct whatever each element accepts, because each takes exactly one
// label, and takes O(labels × elements) steps.
func (p Pattern) match(host string) bool {
	var starts labelStarts
	n := 1
	for k := 0; k < len(host); k++ {
		if host[k] == '.' {
			starts[n] = uint8(k + 1)
			n++
		}
	}
	label := func(i int) string {
		end := len(host)
		if i+1 < n {
			end = int(starts[i+1]) - 1
		}
		return host[starts[i]:end]
	}
	h, e := 0, 0 // the next label and element
	star, starH := -1, 0
	for h < n {
		switch {
		case e < len(p.elems) && p.elems[e].kind == kStar:
			e++
			star, starH = e, h
		case e < len(p.elems) && elemMatch(p.elems[e], label(h)):
			e++
			h++
		case star >= 0:
			// The last star takes one more label.
			starH++
			e, h = star, starH
		default:
			return false
		}
	}
	for e < len(p.elems) && p.elems[e].kind == kStar {
		e++
	}
	return e == len(p.elems)
}

func elemMatch(x elem, label string) bool {
	switch x.kind {
	case kLiteral:
		return x.text == label
	case kGlob:
		return MatchLabel(x.text, label)
	}
	return true // kOne
}

// MatchLabel reports whether one label (lower-case ASCII, no dot) matches
// glob, a pattern label where '*' is any run of characters and '?' any one
// character. It is Match's rule for a label with wildcards inside, for
// indexes (the catalog's suffix table) that find candidate patterns by
// their literal labels and check the glob label alone.
func MatchLabel[S ~string | ~[]byte](glob string, label S) bool {
	g, l := 0, 0
	star, mark := -1, 0
	for l < len(label) {
		switch {
		case g < len(glob) && glob[g] == '*':
			star, mark = g, l
			g++
		case g < len(glob) && (glob[g] == '?' || glob[g] == label[l]):
			g++
			l++
		case star >= 0:
			mark++
			g, l = star+1, mark
		default:
			return false
		}
	}
	for g < len(glob) && glob[g] == '*' {
		g++
	}
	return g == len(glob)
}

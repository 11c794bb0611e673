package catalog

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/pilotwire/pilotwire/internal/pattern"
	"golang.org/x/net/idna"
)

// suffix is what the catalog knows about one DNS suffix: the literal
// labels right of a pattern's '*' (or the whole of an exact pattern), and
// the last two labels of each, which tell Lookup early that a host's domain
// is one no pattern names.
type suffix struct {
	depth int    // number of labels
	exact int    // entry index+1 of the exact pattern equal to this suffix; 0 for none
	wild  int    // entry index+1 of "*.<suffix>": one or more labels under it; 0 for none
	globs []glob // "kv*.<suffix>": one leftmost label matched by a glob
	stars []star // "fef.*.<suffix>": literal leftmost labels, then one or more labels
}

type glob struct {
	pattern  string
	pre, suf string // the literal text before the first '*' and after the last
	entry    int    // entry index
}

// star is a pattern with an inner "*" label, as seen from its suffix.
type star struct {
	prefix string // the literal labels left of the '*', with a trailing dot: "portal.fei."
	score  int
	entry  int // entry index
}

// Scores rank candidate matches: an exact pattern beats every wildcard, and
// among wildcards more literal labels (a longer suffix) win. A label glob
// ("kv*") counts a little more than nothing.
const scoreExact = 1 << 20

// suffixFor returns the suffix record for s in m, creating it.
func suffixFor(m map[string]*suffix, s string) *suffix {
	x := m[s]
	if x == nil {
		x = &suffix{depth: strings.Count(s, ".") + 1}
		m[s] = x
	}
	return x
}

// insert adds entry i, of pattern, to the suffix records in m.
func (c *Catalog) insert(m map[string]*suffix, i int, pattern string) {
	if first, ok := strings.CutSuffix(pattern, ".*"); ok {
		c.prefix[first] = i
		c.prefixLens |= 1 << len(first) // a label is at most 63 bytes
		return
	}
	var x *suffix
	var rest string // the pattern's literal labels right of its '*', if any
	score := scoreExact
	if k := strings.IndexByte(pattern, '*'); k < 0 {
		rest = pattern
		x = suffixFor(m, pattern)
		x.exact = i + 1
	} else {
		// The '*' is in the first label, or is a whole inner label (the
		// loader checked): the labels right of its label are literal.
		ls := strings.LastIndexByte(pattern[:k], '.') + 1
		left := pattern[:ls] // "portal.fei." or ""
		var label string
		label, rest, _ = strings.Cut(pattern[ls:], ".")
		x = suffixFor(m, rest)
		switch {
		case left != "":
			score = 2 * (strings.Count(left, ".") + x.depth)
			x.stars = append(x.stars, star{prefix: left, score: score, entry: i})
		case label == "*":
			score = 2 * x.depth
			x.wild = i + 1
		default:
			score = 2*x.depth + 1
			x.globs = append(x.globs, glob{
				pattern: label,
				pre:     label[:strings.IndexByte(label, '*')],
				suf:     label[strings.LastIndexByte(label, '*')+1:],
				entry:   i,
			})
		}
	}
	for len(c.bound) <= x.depth {
		c.bound = append(c.bound, -1)
	}
	if score != scoreExact {
		c.bound[x.depth] = max(c.bound[x.depth], score)
	}
	// Every pattern ends in two literal labels; mark the domain.
	if j := strings.LastIndexByte(rest, '.'); j >= 0 {
		if j = strings.LastIndexByte(rest[:j], '.'); j >= 0 {
			suffixFor(m, rest[j+1:])
		}
	}
}

func (b *builder) build() *Catalog {
	c := &Catalog{
		entries:  b.entries,
		services: b.services,
		svcIndex: b.svcIndex,
		bound:    []int{-1},
		regional: make([]bool, len(b.entries)),
		svcOf:    make([]int, len(b.entries)),
		matches:  make([]Match, len(b.entries)),
		prefix:   map[string]int{},
	}
	m := map[string]*suffix{}
	for i, e := range c.entries {
		c.insert(m, i, e.Pattern)
		c.svcOf[i] = c.svcIndex[e.Service] // the loader checked that it exists
		if e.NoInspect != "" {
			c.noInspect = append(c.noInspect, i)
		}
		if e.NoBodies != "" {
			c.noBodies = append(c.noBodies, i)
		}
		c.matches[i] = Match{Entry: e, Service: c.services[c.svcOf[i]]}
		c.regional[i] = region([]byte(strings.ReplaceAll(e.Pattern, "*", "msua01"))) != "" ||
			region([]byte(e.Example)) != ""
	}
	c.suffixes = newSuffixTable(m)
	// bound[d] becomes the best wildcard score any suffix of at most d
	// labels can give, so that Lookup stops probing shorter suffixes.
	for d := 1; d < len(c.bound); d++ {
		c.bound[d] = max(c.bound[d], c.bound[d-1])
	}
	return c
}

// maxHost is the longest DNS name in presentation form without the final dot.
const maxHost = 253

// Lookup finds the entry for host. host may carry a port and a trailing dot,
// any letter case, and Unicode (IDNA) labels. IP literals, malformed names
// and hosts no pattern covers report false.
//
// Lookup does not allocate for ASCII names (except to upper-case a region
// token it has not seen before).
func (c *Catalog) Lookup(host string) (Match, bool) {
	var dots dotList
	n, ok := plainName(host, &dots)
	if !ok {
		return c.lookupSlow(host)
	}
	best := find(c, host, dots[:n])
	if best < 0 {
		return Match{}, false
	}
	if !c.regional[best] {
		return c.matches[best], true
	}
	m := c.matches[best]
	m.Region = region(host)
	return m, true
}

// lookupSlow is Lookup for a host that needs normalizing first. It is a
// function of its own so that the fast path does not clear the buffer.
//
//go:noinline
func (c *Catalog) lookupSlow(host string) (Match, bool) {
	var buf [maxHost]byte
	name, ok := normalize(host, &buf)
	if !ok {
		return Match{}, false
	}
	var dots dotList
	n := 0
	for k, b := range name {
		if b == '.' {
			dots[n] = uint8(k)
			n++
		}
	}
	best := find(c, name, dots[:n])
	if best < 0 {
		return Match{}, false
	}
	m := c.matches[best]
	if c.regional[best] {
		m.Region = region(name)
	}
	return m, true
}

// dotList holds the offsets of the dots of a normalized name: at most 126
// in its 253 bytes. Its length is a power of two so that plainName can index
// it without a bounds check.
type dotList [128]uint8

// find returns the index of the best entry for the normalized name, whose
// dots are at the offsets dots, or -1.
func find[S string | []byte](c *Catalog, name S, dots []uint8) int {
	// An exact pattern beats every wildcard.
	x := get(&c.suffixes, name)
	if x != nil && x.exact > 0 {
		return x.exact - 1
	}
	best, bestScore := -1, -1
	// A host whose last two labels no pattern ends in matches no pattern
	// but a prefix one.
	if n := len(dots); n >= 2 {
		if tail := get(&c.suffixes, name[dots[n-2]+1:]); tail != nil {
			// Probe the proper suffixes from the longest down, while one
			// of d labels can still give (at most bound[d]) the best score.
			for k := 0; k <= n-2; k++ {
				d := n - k
				if c.bound[min(d, len(c.bound)-1)] < bestScore {
					break
				}
				x := tail
				if k < n-2 {
					x = get(&c.suffixes, name[dots[k]+1:])
				}
				if x != nil {
					weigh(x, name, int(dots[k])+1, d, &best, &bestScore)
				}
			}
		}
	}
	if best >= 0 {
		return best
	}
	first := name
	if len(dots) > 0 {
		first = name[:dots[0]]
	}
	if c.prefixLens&(1<<(len(first)&63)) == 0 {
		return -1 // no prefix pattern has a first label this long
	}
	if i, ok := c.prefix[string(first)]; ok {
		return i
	}
	return -1
}

// weigh considers the wildcard patterns of suffix x (of d labels) for name,
// whose first left bytes ("fef.msua01.", ending in a dot) precede x.
func weigh[S string | []byte](x *suffix, name S, left, d int, best, bestScore *int) {
	if x.wild > 0 {
		consider(x.wild-1, 2*d, best, bestScore)
	}
	if len(x.globs) > 0 {
		if label := name[:left-1]; indexByte(label, '.') < 0 {
			for _, g := range x.globs {
				// Most globs are "kv*" or "*-my": the literal ends decide
				// before MatchLabel need run.
				if len(label) >= len(g.pre)+len(g.suf) && string(label[:len(g.pre)]) == g.pre &&
					string(label[len(label)-len(g.suf):]) == g.suf && pattern.MatchLabel(g.pattern, label) {
					consider(g.entry, 2*d+1, best, bestScore)
				}
			}
		}
	}
	for _, s := range x.stars {
		// The literal labels left of the '*' are the host's first ones, and
		// the '*' takes at least one label.
		if left > len(s.prefix) && string(name[:len(s.prefix)]) == s.prefix {
			consider(s.entry, s.score, best, bestScore)
		}
	}
}

func consider(entry, score int, best, bestScore *int) {
	if score > *bestScore || score == *bestScore && entry < *best {
		*best, *bestScore = entry, score
	}
}

// plainName reports whether host is already a normalized name: lower-case
// letters, digits, '-' and '_' in labels of 1 to 63 bytes, at most 253 bytes
// in all, and a last label that is not all digits. Most hosts are, and
// Lookup then needs no copy. It notes the offsets of the dots in dots and
// returns their number.
func plainName(host string, dots *dotList) (int, bool) {
	if len(host) == 0 || len(host) > maxHost {
		return 0, false
	}
	// One pass without branches on the bytes (the dots of a name fall
	// where a branch predictor cannot guess), then the labels' lengths.
	var bad uint8
	n := 0
	_ = dots[0] // one nil check, not one per byte
	for k := 0; k < len(host); k++ {
		t := plainByte[host[k]]
		bad |= t
		dots[n&(len(dots)-1)] = uint8(k)
		n += int(t & plainDot)
	}
	if bad&plainOther != 0 || n >= len(dots) {
		return 0, false // more dots than a name of non-empty labels can hold
	}
	start := 0
	for _, d := range dots[:n] {
		if l := int(d) - start; l == 0 || l > 63 {
			return 0, false
		}
		start = int(d) + 1
	}
	last := host[start:]
	if len(last) == 0 || len(last) > 63 {
		return 0, false
	}
	for k := 0; k < len(last); k++ {
		if c := last[k]; c < '0' || c > '9' {
			return n, true
		}
	}
	return 0, false // an IPv4 address, or all digits anyway
}

// The classes of plainByte.
const (
	plainOK    = 0
	plainDot   = 1
	plainOther = 2
)

// plainByte classes the bytes of host names: those a normalized name holds
// as they are (lower-case letters, digits, '-' and '_'), the dot, and the
// others.
var plainByte = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c == '.':
			t[c] = plainDot
		case c == 0 || hostByte[c] != byte(c):
			t[c] = plainOther
		}
	}
	return t
}()

// normalize turns host into a lower-case ASCII DNS name in buf: port and
// trailing dot removed, IDNA labels converted. It refuses IP literals and
// names that are not valid host names.
func normalize(host string, buf *[maxHost]byte) ([]byte, bool) {
	if strings.HasPrefix(host, "[") {
		return nil, false // bracketed IPv6 literal
	}
	if i := strings.IndexByte(host, ':'); i >= 0 {
		if strings.IndexByte(host[i+1:], ':') >= 0 {
			return nil, false // IPv6 literal
		}
		port := host[i+1:]
		if port == "" || len(port) > 5 {
			return nil, false
		}
		for k := 0; k < len(port); k++ {
			if port[k] < '0' || port[k] > '9' {
				return nil, false
			}
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	name, res := lowerASCII(host, buf)
	if res == nameNonASCII {
		a, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return nil, false
		}
		name, res = lowerASCII(a, buf)
	}
	return name, res == nameOK
}

// maxIDNAInput bounds the Unicode host names Lookup converts: each
// character of a legal name takes at most 4 bytes of UTF-8.
const maxIDNAInput = 4 * maxHost

// The results of lowerASCII.
const (
	nameOK = iota
	nameBad
	nameNonASCII
)

// lowerASCII copies host into buf in lower case, checking that it is a
// DNS name: letters, digits, '-' and '_' in labels of 1 to 63 bytes, at
// most 253 bytes in all, and a last label that is not all digits (that
// would be an IPv4 literal: no top-level domain is numeric).
func lowerASCII(host string, buf *[maxHost]byte) ([]byte, int) {
	if len(host) == 0 {
		return nil, nameBad
	}
	if len(host) > maxHost {
		// Unicode that IDNA maps to fewer bytes (full-width letters) may
		// still make a name of legal length; bound the work for the rest.
		if len(host) <= maxIDNAInput {
			for k := 0; k < len(host); k++ {
				if host[k] >= utf8.RuneSelf {
					return nil, nameNonASCII
				}
			}
		}
		return nil, nameBad
	}
	b := buf[:len(host)]
	start := 0
	for k := 0; k < len(host) && k < len(b); k++ {
		c := hostByte[host[k]]
		b[k] = c
		if c > '.' {
			continue
		}
		switch {
		case c == '.':
			if k == start || k-start > 63 {
				return nil, nameBad
			}
			start = k + 1
		case c == 0 && host[k] >= utf8.RuneSelf:
			return nil, nameNonASCII
		case c == 0:
			return nil, nameBad
		}
	}
	last := b[start:]
	if len(last) == 0 || len(last) > 63 {
		return nil, nameBad
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return b, nameOK
		}
	}
	return nil, nameBad
}

// hostByte maps each byte of a host name to its lower-case form, and every
// byte a host name may not hold to 0.
var hostByte = func() (t [256]byte) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = byte(c)
		t[c-'a'+'A'] = byte(c)
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c)
	}
	t['-'], t['_'], t['.'] = '-', '_', '.'
	return t
}()

func indexByte[S string | []byte](b S, c byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func hasStar(s string) bool { return strings.IndexByte(s, '*') >= 0 }

// parsePattern reads a catalog pattern: a host pattern of the one language
// (internal/pattern), in the forms the suffix index serves. It returns the
// parsed pattern, or why s is not a catalog pattern.
func parsePattern(s string) (pattern.Pattern, string) {
	pat, err := pattern.Parse(s)
	if err != nil {
		var pe *pattern.Error
		if errors.As(err, &pe) {
			return pattern.Pattern{}, pe.Reason
		}
		return pattern.Pattern{}, err.Error()
	}
	if r := catalogForm(pat.String()); r != "" {
		return pattern.Pattern{}, r
	}
	return pat, ""
}

// validPattern returns why s is not a valid catalog pattern, or "".
func validPattern(s string) string {
	_, r := parsePattern(s)
	return r
}

// catalogForm returns why p, a pattern in normal form, is not one of the
// forms the catalog admits, or "". They are the forms the reference
// document uses, and those the suffix index serves: every pattern ends in
// two literal labels (but for the prefix form "wpad.*"), holds at most one
// label with a '*', and has a glob label only first.
func catalogForm(p string) string {
	if strings.IndexByte(p, '?') >= 0 {
		return "'?' is not used in catalog patterns (allowlist exports cannot all say it)"
	}
	labels := strings.Split(p, ".")
	if first, ok := strings.CutSuffix(p, ".*"); ok {
		if len(labels) != 2 || hasStar(first) {
			return "a prefix pattern is one literal label followed by \".*\" (e.g. wpad.*)"
		}
		return ""
	} else if len(labels) < 2 {
		return "needs at least two labels"
	}
	stars := 0
	for i, l := range labels {
		if !hasStar(l) {
			continue
		}
		stars++
		if i > 0 && l != "*" {
			return "'*' inside a label is only allowed in the first label"
		}
	}
	if stars > 1 {
		return "at most one label may hold '*'"
	}
	last := labels[len(labels)-1]
	if hasStar(last) || hasStar(labels[len(labels)-2]) {
		return "the last two labels must be literal (no '*.com' or '*.co.uk' style catch-alls)"
	}
	digits := true
	for k := 0; k < len(last); k++ {
		digits = digits && last[k] >= '0' && last[k] <= '9'
	}
	if digits {
		return "the top-level label is numeric (an IP address is not a host pattern)"
	}
	return ""
}

package catalog

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// node is one label of the trie over reversed labels: the root's children
// are top-level domains, their children second-level labels, and so on.
type node struct {
	kids     []child          // literal labels, when few (a scan beats hashing)
	children map[string]*node // literal labels, when many
	star     *node            // an inner "*" label: one or more labels, any text
	globs    []glob           // leftmost labels with '*' inside ("kv*"): pattern ends here
	exact    int              // entry index+1 of the pattern that ends here; 0 for none
	wild     int              // entry index+1 of "*.<this node>": any depth under it; 0 for none
}

// smallFanout is the number of children up to which a node scans a slice
// instead of hashing the label.
const smallFanout = 8

type child struct {
	label string
	n     *node
}

// child returns the child for label, or nil.
func (n *node) child(label []byte) *node {
	if n.children != nil {
		return n.children[string(label)]
	}
	for i := range n.kids {
		if len(n.kids[i].label) == len(label) && n.kids[i].label == string(label) {
			return n.kids[i].n
		}
	}
	return nil
}

// addChild returns the child for label, creating it.
func (n *node) addChild(label string) *node {
	if c := n.child([]byte(label)); c != nil {
		return c
	}
	c := &node{}
	if n.children != nil {
		n.children[label] = c
		return c
	}
	n.kids = append(n.kids, child{label, c})
	if len(n.kids) > smallFanout {
		n.children = map[string]*node{}
		for _, k := range n.kids {
			n.children[k.label] = k.n
		}
		n.kids = nil
	}
	return c
}

type glob struct {
	pattern string
	entry   int // entry index
}

// Scores rank candidate matches: an exact pattern beats every wildcard, and
// among wildcards more literal labels (a longer suffix) win. A label glob
// ("kv*") counts a little more than nothing.
const scoreExact = 1 << 20

func (c *Catalog) insert(i int, pattern string) {
	if first, ok := strings.CutSuffix(pattern, ".*"); ok {
		c.prefix[first] = i
		return
	}
	n := c.root
	rest := pattern
	for rest != "" {
		var label string
		if j := strings.LastIndexByte(rest, '.'); j >= 0 {
			label, rest = rest[j+1:], rest[:j]
		} else {
			label, rest = rest, ""
		}
		leftmost := rest == ""
		switch {
		case leftmost && label == "*":
			n.wild = i + 1
			return
		case leftmost && strings.Contains(label, "*"):
			n.globs = append(n.globs, glob{label, i})
			return
		case label == "*":
			if n.star == nil {
				n.star = &node{}
			}
			n = n.star
		default:
			n = n.addChild(label)
		}
	}
	n.exact = i + 1
}

func (b *builder) build() *Catalog {
	c := &Catalog{
		entries:  b.entries,
		services: b.services,
		svcIndex: b.svcIndex,
		root:     &node{},
		exact:    map[string]int{},
		regional: make([]bool, len(b.entries)),
		svcOf:    make([]int, len(b.entries)),
		prefix:   map[string]int{},
	}
	for i, e := range c.entries {
		c.insert(i, e.Pattern)
		if !hasStar(e.Pattern) {
			c.exact[e.Pattern] = i
		}
		c.svcOf[i] = c.svcIndex[e.Service] // the loader checked that it exists
		c.regional[i] = region([]byte(strings.ReplaceAll(e.Pattern, "*", "msua01"))) != "" ||
			region([]byte(e.Example)) != ""
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
	var buf [maxHost]byte
	name, ok := normalize(host, &buf)
	if !ok {
		return Match{}, false
	}
	// An exact pattern beats every wildcard, so a hit in the exact map
	// needs no walk.
	best, ok := c.exact[string(name)]
	if !ok {
		best = -1
		bestScore := -1
		c.walk(c.root, name, 0, false, &best, &bestScore)
	}
	if best < 0 {
		first := name
		if i := indexByte(name, '.'); i >= 0 {
			first = name[:i]
		}
		i, ok := c.prefix[string(first)]
		if !ok {
			return Match{}, false
		}
		best = i
	}
	m := Match{Entry: c.entries[best], Service: c.services[c.svcOf[best]]}
	if c.regional[best] {
		m.Region = region(name)
	}
	return m, true
}

// walk descends the trie consuming labels of rest from the right; lit is the
// number of literal labels matched so far, and starred says an inner "*"
// was crossed (so the pattern is a wildcard even if it ends here).
func (c *Catalog) walk(n *node, rest []byte, lit int, starred bool, best, bestScore *int) {
	if len(rest) == 0 {
		if n.exact > 0 {
			score := scoreExact
			if starred {
				score = 2 * lit
			}
			consider(n.exact-1, score, best, bestScore)
		}
		return
	}
	if n.wild > 0 {
		consider(n.wild-1, 2*lit, best, bestScore)
	}
	j := lastIndexByte(rest, '.')
	label, next := rest[j+1:], rest[:max(j, 0)]
	if j < 0 {
		for _, g := range n.globs {
			if globMatch(g.pattern, label) {
				consider(g.entry, 2*lit+1, best, bestScore)
			}
		}
	}
	if child := n.child(label); child != nil {
		c.walk(child, next, lit+1, starred, best, bestScore)
	}
	if s := n.star; s != nil {
		// The "*" takes this label and possibly more; a literal child of
		// the "*" node must match one of the labels left of it. (A "*"
		// node only has literal children: a pattern holds one '*' label.)
		for r := next; len(r) > 0; {
			k := lastIndexByte(r, '.')
			l, nx := r[k+1:], r[:max(k, 0)]
			if child := s.child(l); child != nil {
				c.walk(child, nx, lit+1, true, best, bestScore)
			}
			r = nx
		}
	}
}

func consider(entry, score int, best, bestScore *int) {
	if score > *bestScore || score == *bestScore && entry < *best {
		*best, *bestScore = entry, score
	}
}

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

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func lastIndexByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// globMatch matches one label against a glob where '*' stands for any run
// of characters (never a dot: labels hold none).
func globMatch(pattern string, label []byte) bool {
	p, l := 0, 0
	starP, starL := -1, 0
	for l < len(label) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			starP, starL = p, l
			p++
		case p < len(pattern) && pattern[p] == label[l]:
			p++
			l++
		case starP >= 0:
			p = starP + 1
			starL++
			l = starL
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func hasStar(s string) bool { return strings.IndexByte(s, '*') >= 0 }

// validPattern returns why pattern is not a valid host pattern, or "".
func validPattern(p string) string {
	if p == "" {
		return "empty"
	}
	if len(p) > maxHost {
		return "longer than 253 characters"
	}
	labels := strings.Split(p, ".")
	if first, ok := strings.CutSuffix(p, ".*"); ok {
		if len(labels) != 2 || hasStar(first) {
			return "a prefix pattern is one literal label followed by \".*\" (e.g. wpad.*)"
		}
		labels = labels[:1]
	} else if len(labels) < 2 {
		return "needs at least two labels"
	}
	stars := 0
	for i, l := range labels {
		if l == "" {
			return "empty label"
		}
		if len(l) > 63 {
			return "label longer than 63 characters"
		}
		for k := 0; k < len(l); k++ {
			c := l[k]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '*') {
				return "only lower-case letters, digits, '-', '_', '.' and '*' are allowed"
			}
		}
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
	if len(labels) > 1 {
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
	}
	return ""
}

// matchPattern reports whether host (already normalized) matches pattern.
// It is the plain statement of the matching rules that the trie implements
// faster; tests compare the two.
func matchPattern(pattern, host string) bool {
	if first, ok := strings.CutSuffix(pattern, ".*"); ok {
		h, _, _ := strings.Cut(host, ".")
		return h == first
	}
	pl := strings.Split(pattern, ".")
	hl := strings.Split(host, ".")
	if pl[0] == "*" {
		suffix := pl[1:]
		if len(hl) <= len(suffix) {
			return false
		}
		return labelsMatch(suffix, hl[len(hl)-len(suffix):])
	}
	for k, l := range pl {
		if l != "*" {
			continue
		}
		// An inner "*" stands for one or more labels.
		tail := len(pl) - k - 1
		if len(hl) < len(pl) {
			return false
		}
		return labelsMatch(pl[:k], hl[:k]) && labelsMatch(pl[k+1:], hl[len(hl)-tail:])
	}
	if len(pl) != len(hl) {
		return false
	}
	return labelsMatch(pl, hl)
}

func labelsMatch(pl, hl []string) bool {
	for i := range pl {
		switch {
		case pl[i] == "*":
		case hasStar(pl[i]):
			if !globMatch(pl[i], []byte(hl[i])) {
				return false
			}
		case pl[i] != hl[i]:
			return false
		}
	}
	return true
}

// patternScore ranks a pattern the way walk does.
func patternScore(pattern string) int {
	if !hasStar(pattern) {
		return scoreExact
	}
	if strings.HasSuffix(pattern, ".*") {
		return -1 // prefix patterns only apply when nothing else does
	}
	score := 0
	for _, l := range strings.Split(pattern, ".") {
		switch {
		case l == "*":
		case hasStar(l):
			score++
		default:
			score += 2
		}
	}
	return score
}

package catalog

import (
	"strings"
	"testing"
)

// nearHost builds a host close to pattern: each '*' replaced by fill, then
// pre put in front and post after (either may be empty). Hosts built so hit
// the corners of the matching rules far more often than random strings:
// globs that take dots, inner stars that take nothing, suffixes with an
// extra label.
func nearHost(pattern, fill, pre, post string) string {
	return pre + strings.ReplaceAll(pattern, "*", fill) + post
}

var nearFills = []string{"", "a", "a.b", "kv.a", "msua01"}
var nearAffixes = []string{"", "x.", "fef.", "portal.fei."}

// TestLookupNearPatterns compares Lookup with the oracle (checkOracle:
// the one language's pattern.Match of every entry, best score wins) on
// hosts built from every pattern of the embedded catalog.
func TestLookupNearPatterns(t *testing.T) {
	c := Default()
	n := 0
	for _, e := range c.entries {
		for _, fill := range nearFills {
			for _, pre := range nearAffixes {
				for _, post := range []string{"", ".evil.test"} {
					checkOracle(t, c, nearHost(e.Pattern, fill, pre, post))
					n++
				}
			}
		}
	}
	t.Logf("%d hosts compared", n)
}

// FuzzLookupNear compares Lookup with the oracle (pattern.Match of every
// entry, best score wins) on hosts built from a pattern of the catalog.
func FuzzLookupNear(f *testing.F) {
	f.Add(uint16(0), "a", "", "")
	f.Add(uint16(1), "kv.x", "kv", ".com")
	f.Add(uint16(7), "a.b", "fef.", "")
	c := Default()
	f.Fuzz(func(t *testing.T, i uint16, fill, pre, post string) {
		if len(fill)+len(pre)+len(post) > 2*maxHost {
			return
		}
		e := c.entries[int(i)%len(c.entries)]
		checkOracle(t, c, nearHost(e.Pattern, fill, pre, post))
	})
}

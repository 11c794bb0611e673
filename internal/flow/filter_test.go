package flow_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

func TestMatchHostGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		{"*.manage.microsoft.com", "ztd.manage.microsoft.com", true},
		{"*.manage.microsoft.com", "manage.microsoft.com", false},
		{"*.manage.microsoft.com", "a.b.manage.microsoft.com", true},
		{"login.*", "login.live.com", true},
		{"login.*", "xlogin.live.com", false},
		{"h?.manage.*", "h1.manage.microsoft.com", true},
		{"h?.manage.*", "h10.manage.microsoft.com", false},
		{"*", "", true},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b*", "xxbxxaxx", false},
		{"*ab", "abab", true},
		{"a*", "", false},
		{"[a]*", "[a]x", true}, // '[' is a plain character
		{"[a]*", "ax", false},
	} {
		if got := flow.MatchHostGlob(tc.pattern, tc.host); got != tc.want {
			t.Errorf("MatchHostGlob(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
}

// globRegexp is the reference of MatchHostGlob: '*' is .*, '?' is ., the
// rest literal.
func globRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

func FuzzMatchHostGlob(f *testing.F) {
	for _, s := range [][2]string{{"*.manage.microsoft.com", "a.manage.microsoft.com"}, {"*o*o*t.c*m", "login.microsoftonline.com"},
		{"h?.*", "h1.x"}, {"**", ""}, {"a*", "b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, host string) {
		// Host names are ASCII: compare on bytes the regexp sees as runes.
		for _, s := range []string{pattern, host} {
			for i := 0; i < len(s); i++ {
				if s[i] >= 0x80 {
					return
				}
			}
		}
		if len(pattern) > 64 || len(host) > 256 {
			return
		}
		if got, want := flow.MatchHostGlob(pattern, host), globRegexp(pattern).MatchString(host); got != want {
			t.Errorf("MatchHostGlob(%q, %q) = %v, the reference says %v", pattern, host, got, want)
		}
	})
}

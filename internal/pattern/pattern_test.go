package pattern_test

import (
	"errors"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/pattern"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"ztd.dds.microsoft.com",
			[]string{"ztd.dds.microsoft.com", "ZTD.dds.Microsoft.COM", "ztd.dds.microsoft.com."},
			[]string{"dds.microsoft.com", "a.ztd.dds.microsoft.com", "ztd.dds.microsoft.com.evil.net", "ztdxdds.microsoft.com"}},
		{"*.manage.microsoft.com",
			[]string{"a.manage.microsoft.com", "fef.msua01.manage.microsoft.com", "A.B.C.MANAGE.microsoft.com."},
			[]string{"manage.microsoft.com", "evilmanage.microsoft.com", "a.manage.microsoft.com.attacker.net", ".manage.microsoft.com"}},
		{"fef.*.manage.microsoft.com",
			[]string{"fef.msua01.manage.microsoft.com", "fef.a.b.manage.microsoft.com"},
			[]string{"fef.manage.microsoft.com", "x.fef.msua01.manage.microsoft.com", "fei.msua01.manage.microsoft.com"}},
		{"fef.?*.manage.microsoft.com",
			[]string{"fef.msua01.manage.microsoft.com", "fef.a.manage.microsoft.com"},
			[]string{"fef.a.b.manage.microsoft.com", "fef.manage.microsoft.com"}},
		{"wpad.*",
			[]string{"wpad", "wpad.corp.example", "WPAD.", "wpad.a.b.c"},
			[]string{"wpadx.corp.example", "x.wpad.corp.example", "corp.wpad"}},
		{"kv*.prod.do.dsp.mp.microsoft.com",
			[]string{"kv.prod.do.dsp.mp.microsoft.com", "kv701.prod.do.dsp.mp.microsoft.com"},
			[]string{"x.kv701.prod.do.dsp.mp.microsoft.com", "akv.prod.do.dsp.mp.microsoft.com"}},
		{"*-my.sharepoint.com",
			[]string{"contoso-my.sharepoint.com", "-my.sharepoint.com"},
			[]string{"a.contoso-my.sharepoint.com", "contoso-myx.sharepoint.com"}},
		{"h?.manage.*",
			[]string{"h1.manage.microsoft.com", "hx.manage", "h1.manage.a.b"},
			[]string{"h.manage.microsoft.com", "h12.manage.microsoft.com"}},
		{"*.*.manage.*",
			[]string{"a.b.manage.microsoft.com", "a.b.c.manage"},
			[]string{"a.manage.microsoft.com"}},
		{"10.0.0.*",
			[]string{"10.0.0.5", "10.0.0"},
			[]string{"10.0.1.5"}},
		{"2001:DB8::1",
			[]string{"2001:db8::1", "[2001:db8:0::1]"},
			[]string{"2001:db8::2", "::1", "2001.db8"}},
		{"[::1]",
			[]string{"::1", "0:0::1"},
			[]string{"::2", "localhost"}},
		{"bücher.example",
			[]string{"xn--bcher-kva.example", "BÜCHER.example"},
			[]string{"bucher.example"}},
	} {
		p, err := pattern.Parse(tc.pattern)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.pattern, err)
		}
		for _, h := range tc.yes {
			if !p.Match(h) {
				t.Errorf("%q does not match %q", tc.pattern, h)
			}
		}
		for _, h := range tc.no {
			if p.Match(h) {
				t.Errorf("%q matches %q", tc.pattern, h)
			}
		}
	}
	// Hosts that are not DNS names match nothing, even under a star.
	p := pattern.MustParse("*.example")
	for _, h := range []string{"", "a..example", "a b.example", "a.example:443", "[::1]", strings.Repeat("a", 64) + ".example"} {
		if p.Match(h) {
			t.Errorf("%q matches %q", p, h)
		}
	}
	if (pattern.Pattern{}).Match("a.example") {
		t.Error("the zero Pattern matches")
	}
}

func TestGlob(t *testing.T) {
	for in, want := range map[string]string{
		"wpad.*":                     "wpad*",
		"*.manage.microsoft.com":     "*.manage.microsoft.com",
		"fef.*.manage.microsoft.com": "fef.*.manage.microsoft.com",
		"h?.a.*":                     "h?.a*",
		"2001:db8::1":                "2001:db8::1",
	} {
		if got := pattern.MustParse(in).Glob(); got != want {
			t.Errorf("%q.Glob() = %q, want %q", in, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `host pattern "": empty pattern (at offset 0)`},
		{".", `host pattern ".": empty pattern (at offset 0)`},
		{"*", `host pattern "*": '*' alone matches every host (at offset 0)`},
		{"a..b", `host pattern "a..b": empty label (at offset 2)`},
		{".a.b", `host pattern ".a.b": empty label (at offset 0)`},
		{"a.b/c", `host pattern "a.b/c": character '/' is not allowed (letters, digits, '-', '_', '.', '*' and '?' are) (at offset 3)`},
		{"a.[ab].c", `host pattern "a.[ab].c": character '[' is not allowed (letters, digits, '-', '_', '.', '*' and '?' are) (at offset 2)`},
		{"host:443", `host pattern "host:443": character ':' is allowed only in an IPv6 address (a host pattern has no port) (at offset 4)`},
		{"fe80::1%eth0", `host pattern "fe80::1%eth0": character ':' is allowed only in an IPv6 address (a host pattern has no port) (at offset 4)`},
		{"a.**.c", `host pattern "a.**.c": '**' means no more than '*': write one (at offset 2)`},
		{"x**y.c", `host pattern "x**y.c": '**' means no more than '*': write one (at offset 1)`},
		{"bü*.example", `host pattern "bü*.example": label "bü*" mixes Unicode and wildcards: write its ASCII (xn--) form (at offset 0)`},
		{strings.Repeat("a", 64) + ".b", `host pattern "` + strings.Repeat("a", 64) + `.b": label longer than 63 characters (at offset 0)`},
		{strings.Repeat("abc.", 64) + "d", `host pattern "` + strings.Repeat("abc.", 64) + `d": longer than 253 characters (at offset 253)`},
	} {
		_, err := pattern.Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q): no error", tc.in)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", tc.in, err, tc.want)
		}
		var pe *pattern.Error
		if !errors.As(err, &pe) || pe.Pattern != tc.in {
			t.Errorf("Parse(%q): error %#v is not a *pattern.Error naming the pattern", tc.in, err)
		}
	}
}

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"ZTD.dds.Microsoft.com.": "ztd.dds.microsoft.com",
		"*.Manage.microsoft.com": "*.manage.microsoft.com",
		"bücher.example":         "xn--bcher-kva.example",
		"wpad.*":                 "wpad.*",
	} {
		p, err := pattern.Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if p.String() != want {
			t.Errorf("Parse(%q).String() = %q, want %q", in, p, want)
		}
		if q := pattern.MustParse(p.String()); q.String() != p.String() {
			t.Errorf("Parse(%q) = %q, not its own normal form", p, q)
		}
	}
	if got := pattern.MustParse("[2001:DB8::1]").String(); got != "2001:db8::1" {
		t.Errorf("an IPv6 pattern's normal form is %q", got)
	}
	if !pattern.MustParse("a.b").Literal() || pattern.MustParse("a?.b").Literal() || pattern.MustParse("*.b").Literal() {
		t.Error("Literal is wrong")
	}
}

// reference is the language stated as a regular expression built label by
// label, independently of Match's algorithm: a literal label is itself, a
// '*' label one or more labels (zero or more when last, the dot before it
// then optional), '*' and '?' inside a label any run of / one non-dot
// character.
func reference(p string) *regexp.Regexp {
	const label = `[a-z0-9_-]+`
	labels := strings.Split(p, ".")
	var b strings.Builder
	b.WriteString(`^`)
	for i, l := range labels {
		last := i == len(labels)-1
		switch {
		case l == "*" && last && i > 0:
			b.WriteString(`(?:\.` + label + `)*`)
			continue
		case i > 0:
			b.WriteString(`\.`)
		}
		switch {
		case l == "*":
			b.WriteString(label + `(?:\.` + label + `)*`)
		default:
			for _, c := range l {
				switch c {
				case '*':
					b.WriteString(`[^.]*`)
				case '?':
					b.WriteString(`[^.]`)
				default:
					b.WriteString(regexp.QuoteMeta(string(c)))
				}
			}
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// FuzzMatch compares Match with the reference over every pattern Parse
// accepts and every host that is a DNS name.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*.manage.microsoft.com", "fef.msua01.manage.microsoft.com"},
		{"fef.*.manage.microsoft.com", "fef.a.b.manage.microsoft.com"},
		{"wpad.*", "wpad"},
		{"*.*.a.*", "x.y.a"},
		{"a*b*c.*.d", "axbyc.q.d"},
		{"?*.b", "a.b"},
		{"a.*.b.*.c", "a.x.b.y.b.z.c"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, host string) {
		p, err := pattern.Parse(pat)
		if err != nil {
			return
		}
		// Parse's normal form is the reference's input; hosts the
		// reference is stated for are lower-case ASCII names.
		h := strings.ToLower(strings.TrimSuffix(host, "."))
		valid := h != "" && len(h) <= pattern.MaxLen && regexp.MustCompile(`^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$`).MatchString(h)
		got := p.Match(host)
		// Glob is wider than the pattern: whatever matches p matches it.
		if got && valid {
			if ok, err := path.Match(p.Glob(), h); err != nil || !ok {
				t.Fatalf("%q matches %q but its Glob %q does not", p, h, p.Glob())
			}
		}
		if !valid {
			if got && !strings.ContainsFunc(host, func(r rune) bool { return r >= 0x80 }) {
				t.Fatalf("%q matches %q, which is not a DNS name", p, host)
			}
			return
		}
		if want := reference(p.String()).MatchString(h); got != want {
			t.Fatalf("%q.Match(%q) = %v, the reference says %v", p, host, got, want)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	p := pattern.MustParse("fef.*.manage.microsoft.com")
	for b.Loop() {
		p.Match("fef.msua01.manage.microsoft.com")
	}
}

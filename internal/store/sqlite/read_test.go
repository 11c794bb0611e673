package sqlite

import "testing"

func TestGlobMatch(t *testing.T) {
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
		if got := globMatch(tc.pattern, tc.host); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
}

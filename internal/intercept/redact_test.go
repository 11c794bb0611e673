package intercept

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedactRequestURI(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/path?", "/path?"},
		{"/blob?sv=2020&sig=abc%2Bdef&se=2026", "/blob?sv=2020&sig=REDACTED&se=2026"},
		{"/cb?code=xyz&state=1", "/cb?code=REDACTED&state=1"},
		{"/x?access_token=a&refresh_token=b&id_token=c", "/x?access_token=REDACTED&refresh_token=REDACTED&id_token=REDACTED"},
		{"/x?Client_Secret=a&X-Amz-Signature=b", "/x?Client_Secret=REDACTED&X-Amz-Signature=REDACTED"},
		{"/x?%73ig=a", "/x?%73ig=REDACTED"}, // an escaped name is still sig
		{"/x?sig&n=1", "/x?sig&n=1"},        // no value, nothing to hide
		{"/x?a=1&&b=2&", "/x?a=1&&b=2&"},
		{"/x?tokenless=1&n=%zz", "/x?tokenless=REDACTED&n=%zz"},
	} {
		if got := RedactRequestURI(tc.in); got != tc.want {
			t.Errorf("RedactRequestURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedactRequestURI: the path is kept byte for byte, and no value of a
// secret parameter survives.
func FuzzRedactRequestURI(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "/blob?sig=x&sv=1", "/?code=1&code=2", "/?%zz=1&token=%", "/p%3Fq?x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		got := RedactRequestURI(uri)
		path, _, _ := strings.Cut(uri, "?")
		if !strings.HasPrefix(got, path) {
			t.Fatalf("path changed: %q -> %q", uri, got)
		}
		_, query, ok := strings.Cut(got, "?")
		if !ok {
			if got != uri {
				t.Fatalf("no query, yet changed: %q -> %q", uri, got)
			}
			return
		}
		for part := range strings.SplitSeq(query, "&") {
			name, value, hasValue := strings.Cut(part, "=")
			dec, err := url.QueryUnescape(name)
			if err != nil {
				dec = name
			}
			if hasValue && secretName(dec) && value != Redacted {
				t.Fatalf("secret %q kept in %q (from %q)", name, got, uri)
			}
		}
	})
}

func TestHeaderLines(t *testing.T) {
	req := map[string][]string{
		"User-Agent": {"Windows-Update-Agent/10.0"}, "Authorization": {"Bearer eyJ0"}, "Cookie": {"a=1", "b=2"},
		"X-Api-Key": {"k"}, "Ms-Cv": {"x\r\nInjected: 1"},
	}
	resp := map[string][]string{"Content-Type": {"application/json"}, "Set-Cookie": {"s=1"}}
	want := "> Authorization: REDACTED\n> Cookie: REDACTED\n> Cookie: REDACTED\n> Ms-Cv: xInjected: 1\n> User-Agent: Windows-Update-Agent/10.0\n" +
		"> X-Api-Key: REDACTED\n< Content-Type: application/json\n< Set-Cookie: REDACTED"
	if got := HeaderLines(req, resp); got != want {
		t.Errorf("HeaderLines:\n%s\nwant:\n%s", got, want)
	}
	big := map[string][]string{"X-Big": {strings.Repeat("a", MaxHeaders)}}
	if got := HeaderLines(map[string][]string{"A": {"1"}}, big); got != "> A: 1\n… (cut at 8192 bytes)" {
		t.Errorf("cut: %q", got)
	}
}

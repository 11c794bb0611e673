package intercept

import (
	"mime"
	"net/url"
	"slices"
	"strconv"
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

// headerLinesBefore is HeaderLines as it was before it was made to
// allocate less: FuzzHeaderLines holds the two to the same text.
func headerLinesBefore(req, resp map[string][]string) string {
	var b strings.Builder
	for _, side := range []struct {
		mark string
		h    map[string][]string
	}{{"> ", req}, {"< ", resp}} {
		names := make([]string, 0, len(side.h))
		for k := range side.h {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			for _, v := range side.h[k] {
				if secretNameBefore(k) {
					v = Redacted
				}
				line := side.mark + k + ": " + strings.Map(noControl, v) + "\n"
				if b.Len()+len(line) > MaxHeaders {
					b.WriteString("… (cut at " + strconv.Itoa(MaxHeaders) + " bytes)\n")
					return strings.TrimSuffix(b.String(), "\n")
				}
				b.WriteString(line)
			}
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func secretNameBefore(name string) bool {
	n := strings.ToLower(name)
	if secretParams[n] || secretHeaders[n] || strings.HasSuffix(n, "key") {
		return true
	}
	for _, s := range []string{"token", "secret", "password", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// FuzzHeaderLines: the same text as before, for any names and values
// (a value's length decides where the text is cut).
func FuzzHeaderLines(f *testing.F) {
	f.Add("Authorization", "Bearer x", "X-Client-Secret", "s", 3, 10)
	f.Add("Cookie", "a\r\nb", "Content-Type", "text/plain", 1, 9000)
	f.Add(strings.Repeat("X-Very-Long-Header-Name-", 4)+"Token", "v", "Sig", "1", 40, 100)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, copies, size int) {
		copies = min(max(copies, 1), 40)
		req := map[string][]string{k1: {v1}}
		resp := map[string][]string{k2: {v2, strings.Repeat("v", min(max(size, 0), 3*MaxHeaders))}}
		for i := range copies {
			req[k1+strconv.Itoa(i)] = []string{v2}
		}
		if got, want := HeaderLines(req, resp), headerLinesBefore(req, resp); got != want {
			t.Fatalf("HeaderLines:\n%q\nbefore:\n%q", got, want)
		}
		for _, n := range []string{k1, k2} {
			if secretName(n) != secretNameBefore(n) {
				t.Fatalf("secretName(%q) = %v", n, secretName(n))
			}
		}
	})
}

func BenchmarkHeaderLines(b *testing.B) {
	req := map[string][]string{"Host": {"example.com"}, "User-Agent": {"Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.50"},
		"Accept": {"*/*"}, "Authorization": {"Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9"}, "Ms-Cv": {"k3J7x2Q9.1.2"}, "Connection": {"keep-alive"}}
	resp := map[string][]string{"Content-Type": {"application/json; charset=utf-8"}, "Content-Length": {"1234"}, "Date": {"Sat, 05 Dec 2026 10:00:00 GMT"},
		"Cache-Control": {"no-cache"}, "Set-Cookie": {"a=1; Path=/; Secure"}, "X-Ms-Request-Id": {"0f0f0f0f-aaaa-bbbb-cccc-123456789abc"}}
	b.ReportAllocs()
	for b.Loop() {
		HeaderLines(req, resp)
	}
}

// mediaType answers from its cache what mime.ParseMediaType answers, for
// values that share a slot too.
func TestMediaType(t *testing.T) {
	values := []string{"text/plain; charset=utf-8", "Application/JSON", "text/html;;", "a/b", "b/a", "multipart/form-data; boundary=x",
		"multipart/form-data; boundary=y", "nonsense", "text/plain; charset=utf-8; charset=latin1"}
	for round := range 3 {
		for _, v := range values {
			want, _, err := mime.ParseMediaType(v)
			if err != nil {
				want = "(malformed)"
			}
			if got := mediaType(v); got != want {
				t.Errorf("round %d: mediaType(%q) = %q, want %q", round, v, got, want)
			}
		}
	}
	if got := contentTypes("text/plain; charset=utf-8", "application/json", true); got != "response text/plain; request application/json" {
		t.Errorf("contentTypes: %q", got)
	}
}

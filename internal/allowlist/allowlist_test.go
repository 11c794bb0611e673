package allowlist

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/pattern"
)

func patterns(l *List) string {
	var s []string
	for _, p := range l.Patterns() {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

func TestParseFormats(t *testing.T) {
	cases := []struct {
		name, data, format, want string
	}{
		{"squid.txt", "# Squid dstdomain list\n.manage.microsoft.com\nztd.dds.microsoft.com\n\n", FormatLines,
			"manage.microsoft.com *.manage.microsoft.com ztd.dds.microsoft.com"},
		{"hosts.txt", "\ufeff*.manage.microsoft.com\r\nkv*.prod.do.dsp.mp.microsoft.com\r\n  wpad.*  \n", FormatLines,
			"*.manage.microsoft.com kv*.prod.do.dsp.mp.microsoft.com wpad.*"},
		{"e.csv", "pattern,example,service\nztd.dds.microsoft.com,ztd.dds.microsoft.com,autopilot\n\"*.a.example\",x.a.example,lab\n", FormatCSV,
			"ztd.dds.microsoft.com *.a.example"},
		{"e.json", "[\n  {\"pattern\": \"ztd.dds.microsoft.com\"},\n  {\"pattern\": \"*.manage.microsoft.com\", \"service\": \"x\"}\n]\n", FormatJSON,
			"ztd.dds.microsoft.com *.manage.microsoft.com"},
		{"c.yaml", "entries:\n  - pattern: proxy.lab.example\n    service: autopilot\n    phase: profile\n  - patterns: [a.lab.example, b.lab.example]\n    service: autopilot\n    phase: profile\n", FormatCatalog,
			"proxy.lab.example a.lab.example b.lab.example"},
	}
	for _, tc := range cases {
		l, err := Parse(tc.name, []byte(tc.data))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if l.Format != tc.format || patterns(l) != tc.want {
			t.Errorf("%s: format %s, patterns %q; want %s, %q", tc.name, l.Format, patterns(l), tc.format, tc.want)
		}
	}
}

func TestRuleLines(t *testing.T) {
	l, err := Parse("allow.txt", []byte("# c\n\n.example.com\nx.test\n"))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"example.com":    "allow.txt:3 (.example.com)",
		"a.example.com":  "allow.txt:3 (.example.com)",
		"X.TEST.":        "allow.txt:4 (x.test)",
		"y.test":         "",
		"notexample.com": "",
	} {
		r, ok := l.Match(host)
		got := ""
		if ok {
			got = r.String()
		}
		if got != want {
			t.Errorf("Match(%q) = %q, want %q", host, got, want)
		}
	}
	y, err := Parse("c.yaml", []byte("# lab\nentries:\n  - pattern: proxy.lab.example\n    service: autopilot\n    phase: profile\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := y.Match("proxy.lab.example"); r.String() != "c.yaml:3 (proxy.lab.example)" {
		t.Errorf("catalog rule = %q", r.String())
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ name, data, want string }{
		{"a.txt", "ok.example\n\nbad host\n", `allowlist a.txt:3: "bad host": one host pattern a line (comments start the line with '#')`},
		{"a.txt", "ok.example\nfoo.**bar\n", `allowlist a.txt:2: "foo.**bar": '**' means no more than '*': write one (at offset 4)`},
		{"a.txt", "*\n", `allowlist a.txt:1: "*": '*' alone matches every host (at offset 0)`},
		{"a.txt", "ok.example\nhost:443\n", `allowlist a.txt:2: "host:443": character ':' is allowed only in an IPv6 address (a host pattern has no port) (at offset 4)`},
		{"a.txt", ".*.example\n", `allowlist a.txt:1: ".*.example": a Squid ".domain" value takes no wildcard`},
		{"a.txt", "# only comments\n\n", `allowlist a.txt: no hosts in it (an empty allowlist would deny everything)`},
		{"e.csv", "pattern,example\na.example,a.example\n\"b.example,b\n", `allowlist e.csv:3: not valid CSV: extraneous or missing " in quoted-field`},
		{"e.csv", "pattern,example\na.example,a\nb..example,b\n", `allowlist e.csv:3: "b..example": empty label (at offset 2)`},
		{"e.json", "[\n {\"pattern\": \"a.example\"},\n {\"service\": \"x\"}\n]", `allowlist e.json:3: entry has no "pattern"`},
		{"e.json", "[\n {\"pattern\": \"a.example\"},\n {\"pattern\": 7}\n]", `allowlist e.json:3: not a JSON export: json: cannot unmarshal number into Go struct field .pattern of type string`},
		{"e.json", "[\n {\"pattern\": \"a.example\"}\n {\"pattern\": \"b\"}]", `allowlist e.json:3: not a JSON export: expected comma after array element`},
		{"c.yaml", "entries:\n  - pattern: a.example\n    service: nosuch\n    phase: profile\n", `allowlist: catalog c.yaml:3: unknown service "nosuch" (define it under services:)`},
	}
	for _, tc := range cases {
		_, err := Parse(tc.name, []byte(tc.data))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%s, %q):\n got %v\nwant %s", tc.name, tc.data, err, tc.want)
		}
	}
	if _, err := Load("/nonexistent/allow.txt"); err == nil || !strings.Contains(err.Error(), "/nonexistent/allow.txt") {
		t.Errorf("Load of a missing file: %v", err)
	}
	var e *Error
	if _, err := Parse("big", bytes.Repeat([]byte("a\n"), MaxFileSize/2+1)); !errors.As(err, &e) || e.Reason != "larger than 16777216 bytes" {
		t.Errorf("a file over the limit: %v", err)
	}
}

func TestPolicy(t *testing.T) {
	allow, _ := Parse("allow.txt", []byte(".microsoft.com\n"))
	deny, _ := Parse("deny.txt", []byte("# no telemetry\nv10.events.data.microsoft.com\n"))
	cases := []struct {
		p    Policy
		host string
		ok   bool
		rule string
	}{
		{Policy{}, "anything.example", true, ""},
		{Policy{Allow: allow}, "ztd.dds.microsoft.com", true, "allowed by allowlist rule allow.txt:1 (.microsoft.com)"},
		{Policy{Allow: allow}, "google.com", false, "not in allowlist allow.txt"},
		{Policy{Allow: allow, Deny: deny}, "v10.events.data.microsoft.com", false, "denied by denylist rule deny.txt:2 (v10.events.data.microsoft.com)"},
		{Policy{Deny: deny}, "google.com", true, ""},
	}
	for _, tc := range cases {
		ok, rule := tc.p.Decide(tc.host, 443)
		if ok != tc.ok || rule != tc.rule {
			t.Errorf("Decide(%q) = %v, %q; want %v, %q", tc.host, ok, rule, tc.ok, tc.rule)
		}
	}
}

// TestExportRoundTrip: every list `endpoints export` writes of the
// required entries reads back, and allows each entry's example host;
// the Squid list only lacks what it says it left out.
func TestExportRoundTrip(t *testing.T) {
	cat := catalog.Default()
	entries, err := cat.Select(catalog.Selection{Required: []catalog.Required{catalog.RequiredYes}})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"squid", "hosts", "csv", "json"} {
		var buf bytes.Buffer
		if err := cat.Export(&buf, format, entries, catalog.ExportOptions{Title: "pilotwire endpoints export --required"}); err != nil {
			t.Fatal(err)
		}
		l, err := Parse("required."+format, buf.Bytes())
		if err != nil {
			t.Fatalf("%s export does not read back: %v", format, err)
		}
		for _, e := range entries {
			if _, ok := l.Match(e.Example); ok {
				continue
			}
			if format == "squid" && strings.Contains(buf.String(), "add it yourself: "+e.Pattern+" ") {
				continue // the export says it is missing
			}
			t.Errorf("%s export: required %s (example %s) is not allowed", format, e.Pattern, e.Example)
		}
		if format == "hosts" || format == "csv" || format == "json" {
			// Pattern for pattern, the same list.
			var want []string
			seen := map[string]bool{}
			for _, e := range entries {
				if !seen[e.Pattern] {
					seen[e.Pattern] = true
					want = append(want, e.Pattern)
				}
			}
			if got := l.Patterns(); len(got) != len(want) {
				t.Errorf("%s export: %d patterns read back, want %d", format, len(got), len(want))
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"# c\n.manage.microsoft.com\nztd.dds.microsoft.com\n",
		"*.a.example\r\nwpad.*\n",
		"pattern,example\n\"a.example\",a\n",
		"[{\"pattern\":\"a.example\"}]",
		"entries:\n  - pattern: a.example\n    service: autopilot\n    phase: profile\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz", data)
		if err != nil {
			var e *Error
			var ce *catalog.Error
			if !errors.As(err, &e) && !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is neither an allowlist nor a catalog error", err, err)
			}
			return
		}
		if len(l.Rules) == 0 {
			t.Fatal("a list without rules was accepted")
		}
		for _, r := range l.Rules {
			if r.Line < 1 || len(r.Patterns) == 0 {
				t.Fatalf("rule %+v: no line or no pattern", r)
			}
			for _, p := range r.Patterns {
				// Every pattern is in the language's normal form.
				if q, err := pattern.Parse(p.String()); err != nil || q.String() != p.String() {
					t.Fatalf("pattern %q does not parse back: %v", p, err)
				}
			}
		}
	})
}

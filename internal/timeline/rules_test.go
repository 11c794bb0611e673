package timeline

import (
	"slices"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/pattern"
)

func TestHostPattern(t *testing.T) {
	for _, tt := range []struct {
		pattern, host string
		want          bool
	}{
		{"ztd.dds.microsoft.com", "ztd.dds.microsoft.com", true},
		{"ztd.dds.microsoft.com", "x.ztd.dds.microsoft.com", false},
		{"*.manage.microsoft.com", "r.manage.microsoft.com", true},
		{"*.manage.microsoft.com", "fef.msua01.manage.microsoft.com", true},
		{"*.manage.microsoft.com", "manage.microsoft.com", false},
		{"*.manage.microsoft.com", "evilmanage.microsoft.com", false},
		{"*.manage.microsoft.com", "r.manage.microsoft.com.attacker.net", false},
		{"fef.*.manage.microsoft.com", "fef.msua01.manage.microsoft.com", true},
		{"fef.*.manage.microsoft.com", "fef.a.b.manage.microsoft.com", true},
		{"fef.?*.manage.microsoft.com", "fef.msua01.manage.microsoft.com", true},
		{"fef.?*.manage.microsoft.com", "fef.a.b.manage.microsoft.com", false},
		{"fef.*.manage.microsoft.com", "fef.manage.microsoft.com", false},
		{"kv*.prod.do.dsp.mp.microsoft.com", "kv801.prod.do.dsp.mp.microsoft.com", true},
		{"kv*.prod.do.dsp.mp.microsoft.com", "cp801.prod.do.dsp.mp.microsoft.com", false},
		{"ctldl.windowsupdate.com.", "ctldl.windowsupdate.com", true},
		{"CTLDL.WindowsUpdate.com", "ctldl.windowsupdate.com", true},
	} {
		p, err := pattern.Parse(tt.pattern)
		if err != nil {
			t.Fatalf("pattern.Parse(%q): %v", tt.pattern, err)
		}
		if got := p.Match(tt.host); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
}

// TestRuleHostWarnings: a rule file whose host patterns mean something else
// under the one pattern language than they did under the rules' own (where
// a '*' label after the first matched exactly one label) is loaded, with a
// warning per such pattern; the embedded rules have none.
func TestRuleHostWarnings(t *testing.T) {
	data := []byte(`version: 1
milestones:
  - id: a
    title: A
    match:
      - hosts: ["fef.*.manage.microsoft.com", "*.manage.microsoft.com",
                "*.*.example.com", "fef.?*.manage.microsoft.com"]
  - id: b
    title: B
    context:
      within: 1m
      match: [{hosts: [login.*]}]
    match:
      - hosts: [x.example.com]
phases: [{id: p, name: P, start: [session-start]}]
`)
	r, err := ParseRules("mine.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"mine.yaml:6: host pattern fef.*.manage.microsoft.com now matches one or more labels where it matched exactly one",
		"mine.yaml:12: host pattern login.* now matches zero or more labels where it matched exactly one",
	}
	if !slices.Equal(r.Warnings, want) {
		t.Errorf("warnings:\n got %q\nwant %q", r.Warnings, want)
	}
	def, err := DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	if len(def.Warnings) != 0 {
		t.Errorf("the embedded rules warn: %q", def.Warnings)
	}
}

func TestRuleHostErrors(t *testing.T) {
	for bad, want := range map[string]string{
		"":          `host pattern "": empty pattern`,
		"*":         `host pattern "*": '*' alone matches every host`,
		"a..b":      `host pattern "a..b": empty label`,
		"[.example": `host pattern "[.example": character '[' is not allowed`,
	} {
		data := "version: 1\nmilestones: [{id: a, title: A, match: [{hosts: [\"" + bad + "\"]}]}]\nphases: [{id: p, name: P, start: [session-start]}]\n"
		_, err := ParseRules("mine.yaml", []byte(data))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "mine.yaml") {
			t.Errorf("hosts [%q]: error %v, want one naming the file and saying %s", bad, err, want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"*/setup.exe", "/pr/wsus/setup.exe", true},
		{"*/setup.exe", "/pr/wsus/setup.exe.bak", false},
		{"*.exe", "/release2/update2/googleupdatesetup.exe", true},
		{"*/trafficgateway/*", "/trafficgateway/trafficroutingservice/sidecar", true},
		{"*/trafficgateway/*", "/x/trafficgateway", false},
		{"/a*b*c", "/aXXbYYc", true},
		{"/a*b*c", "/aXXbYY", false},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"a**b", "ab", true},
	} {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestURLPath(t *testing.T) {
	for in, want := range map[string]string{
		"http://ctldl.windowsupdate.com/msdownload/x.cab?abc": "/msdownload/x.cab",
		"https://host":         "/",
		"/pr/wsus/setup.exe#f": "/pr/wsus/setup.exe",
		"":                     "",
	} {
		if got := urlPath(in); got != want {
			t.Errorf("urlPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFileName: "File: NAME" names only a real file: the last path segment,
// a name, a dot and an extension of 1 to 10 letters and digits that is not
// only digits.
func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"http://dl.google.com/release2/update2/x/GoogleUpdateSetup.exe":              "GoogleUpdateSetup.exe",
		"http://ctldl.windowsupdate.com/msdownload/authrootstl.cab?6d6d6e6f5d3e1a2b": "authrootstl.cab",
		"http://officecdn.microsoft.com/pr/x/Office/Data/v64.cab":                    "v64.cab",
		"http://x.example/a/stream.x64.x-none.12.dat":                                "stream.x64.x-none.12.dat",
		"http://x.example/app.intunewin":                                             "app.intunewin",
		"http://x.example/pkg.tar.gz#frag":                                           "pkg.tar.gz",
		"/proxy.pac":                                                                 "proxy.pac",
		"http://x.example/update/current":                                            "",
		"http://x.example/api/v1":                                                    "",
		"http://x.example/api/v1/":                                                   "",
		"http://x.example/":                                                          "",
		"http://x.example":                                                           "",
		"http://x.example/?file=setup.exe":                                           "",
		"http://x.example/Office/Data/16.0.11929.20254":                              "",
		"http://x.example/.hidden":                                                   "",
		"http://x.example/name.":                                                     "",
		"http://x.example/a.verylongextension":                                       "",
		"http://x.example/a.ex%65":                                                   "",
		"http://ocsp.digicert.com/MFEwTzBNMEswSTAJBgUrDgMCGgUABBSAUQYBMq2awn1Rh6Doh%2FsB": "",
		"": "",
	} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaultRulesParse(t *testing.T) {
	r, err := DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Milestones) < 20 || len(r.Phases) != 6 {
		t.Errorf("default rules: %d milestones, %d phases", len(r.Milestones), len(r.Phases))
	}
	// Every milestone DESIGN.md's timeline lists (and the first and last
	// flow) is a rule.
	for _, id := range []string{"first-flow", "connectivity-check", "registration-lookup", "profile-download", "activation",
		"oobe-update-check", "tpm-attestation", "reboot", "entra-signin", "intune-enrollment", "intune-checkin", "ime-content",
		"office-download", "delivery-optimization", "wns", "onedrive", "teams", "ctl-refresh", "defender", "third-party", "last-flow"} {
		found := false
		for _, m := range r.Milestones {
			found = found || m.ID == id
		}
		if !found {
			t.Errorf("no milestone rule %q", id)
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	const phases = "\nphases:\n  - {id: a, name: A, start: [session-start]}\n"
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty file"},
		{"version", "version: 2\nmilestones: [{id: x, title: X, kind: first-flow}]" + phases, "version 2"},
		{"unknown field", "version: 1\nmilestones: [{id: x, title: X, kind: first-flow, colour: red}]" + phases, "colour"},
		{"no match", "version: 1\nmilestones: [{id: x, title: X}]" + phases, "no match"},
		{"duplicate", "version: 1\nmilestones: [{id: x, title: X, kind: first-flow}, {id: x, title: Y, kind: last-flow}]" + phases, "duplicate"},
		{"after later", "version: 1\nmilestones: [{id: x, title: X, after: y, match: [{services: [a]}]}, {id: y, title: Y, kind: last-flow}]" + phases, `after "y"`},
		{"kind", "version: 1\nmilestones: [{id: x, title: X, kind: sometimes}]" + phases, "unknown kind"},
		{"reboot", "version: 1\nmilestones: [{id: x, title: X, kind: reboot, silence: 10s}]" + phases, "reboot rule needs"},
		{"duration", "version: 1\nmilestones: [{id: x, title: X, kind: first-flow, window: soon}]" + phases, "soon"},
		{"negative", "version: 1\nmilestones: [{id: x, title: X, kind: first-flow, window: -1s}]" + phases, "negative"},
		{"host", "version: 1\nmilestones: [{id: x, title: X, match: [{hosts: ['a..b']}]}]" + phases, "empty label"},
		{"scheme", "version: 1\nmilestones: [{id: x, title: X, match: [{schemes: [ftp]}]}]" + phases, "scheme"},
		{"empty matcher", "version: 1\nmilestones: [{id: x, title: X, match: [{}]}]" + phases, "empty matcher"},
		{"phase start", "version: 1\nmilestones: [{id: x, title: X, kind: first-flow}]\nphases: [{id: a, name: A, start: [nope]}]", "no such milestone"},
		{"first phase", "version: 1\nmilestones: [{id: x, title: X, kind: first-flow}]\nphases: [{id: a, name: A, start: [x]}]", "session-start"},
		{"hurts", "version: 1\nmilestones: [{id: x, title: X, kind: first-flow}]" + phases + "hurts: {profile: nowhere}", "no phase"},
		{"not yaml", "version: [", "rules.yaml"},
		{"context within", "version: 1\nmilestones: [{id: x, title: X, match: [{services: [a]}], context: {match: [{services: [b]}]}}]" + phases, "context needs within"},
		{"context kind", "version: 1\nmilestones: [{id: x, title: X, kind: first-flow, context: {within: 1m, match: [{services: [b]}]}}]" + phases, "takes no context"},
		{"context matcher", "version: 1\nmilestones: [{id: x, title: X, match: [{services: [a]}], context: {within: 1m, match: [{}]}}]" + phases, "context match 1: empty matcher"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRules("rules.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseRules: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// FuzzParseRules: rules files are user input; bad ones must give an error,
// never a panic, and good ones must be usable.
func FuzzParseRules(f *testing.F) {
	// The embedded rules are parsed by TestDefaultRulesParse; as a fuzz seed
	// their 9 KiB make every mutation slow, so the seeds stay small.
	f.Add([]byte("version: 1\nmilestones: [{id: x, title: X, kind: first-flow}]\nphases: [{id: a, name: A, start: [session-start]}]\n"))
	f.Add([]byte("version: 1\nmilestones: [{id: x, title: X, match: [{hosts: ['*.a.b', 'k*.c'], paths: ['*/x*']}]}]\nphases: [{id: a, name: A, start: [session-start]}]\n"))
	f.Add([]byte("version: 1\nmilestones: [{id: r, title: R, kind: reboot, silence: 1s, probe: [{services: [ncsi]}], probe_within: 1s, burst_within: 1s, burst_flows: 1}]\nphases: [{id: a, name: A, start: [session-start]}]\n"))
	f.Add([]byte("version: 1\nmilestones: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRules("fuzz.yaml", data)
		if err != nil {
			return
		}
		if len(r.Milestones) == 0 || len(r.Phases) == 0 || r.Content.MinBytes <= 0 || r.Content.SlowFactor <= 0 {
			t.Fatalf("accepted rules are not usable: %+v", r)
		}
		for _, m := range r.Milestones {
			for _, mt := range m.Match {
				for i, h := range mt.hosts {
					// A pattern without wildcards matches exactly itself.
					name := strings.ToLower(strings.TrimSuffix(mt.Hosts[i], "."))
					if !strings.Contains(name, "*") && !strings.ContainsAny(name, "?") && !h.Match(name) {
						t.Errorf("host pattern %q does not match itself", mt.Hosts[i])
					}
				}
				for _, p := range mt.paths {
					// Every glob matches its own text ('*' matches "*").
					if !globMatch(p, p) {
						t.Errorf("path glob %q does not match itself", p)
					}
				}
			}
		}
	})
}

// TestParseRulesErrorsSayWhere: a bad --rules file is reported as
// file:line and what was expected, in words, never a Go type name.
func TestParseRulesErrorsSayWhere(t *testing.T) {
	const head = "version: 1\nmilestones:\n  - id: x\n    title: X\n"
	const phases = "phases:\n  - {id: a, name: A, start: [session-start]}\n"
	for _, tt := range []struct{ yaml, want string }{
		{head + "    match: foo\n", "my.yaml:5: match: got text (foo), want a list of matchers, each a mapping of services, hosts, paths, schemes or kinds"},
		{head + "    colour: red\n", "my.yaml:5: unknown field \"colour\" in a milestone rule (known: id, title, text, region_text, file_text, kind, likely, provisioning, context, match, after, quiet_before, repeat_after, window, silence, probe, probe_within, burst_within, burst_flows)"},
		{"version: one\n", "my.yaml:1: version: got text (one), want a whole number"},
		{head + "    kind: first-flow\n    window: soon\n", "my.yaml:6: window: \"soon\" is not a duration (want one like 30s, 5m or 1h)"},
		{"version: [", "my.yaml:1: not valid YAML: did not find expected node content"},
		{head + phases, "my.yaml:3: milestone 1 (\"x\"): no match"},
		{"- a\n- b\n", "my.yaml:1: got a list, want a mapping with version, milestones, phases, hurts and content"},
		{head + "    match:\n      - hosts: a.b\n", "my.yaml:6: hosts: got text (a.b), want a list, e.g. [a, b]"},
		{head + "    likely: maybe\n    kind: first-flow\n", "my.yaml:5: likely: got text (maybe), want true or false"},
		{head + "    kind: first-flow\n" + "phases:\n  - {id: a, name: A, start: [session-start]}\n  - {id: b, name: B, start: [nope]}\n", "my.yaml:8: phase 2 (\"b\"): start \"nope\": no such milestone"},
	} {
		_, err := ParseRules("my.yaml", []byte(tt.yaml))
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseRules(%q):\n got %v\nwant %s", tt.yaml, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "timeline.") {
			t.Errorf("error names a Go type: %v", err)
		}
	}
}

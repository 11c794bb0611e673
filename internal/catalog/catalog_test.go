package catalog

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/idna"
	"gopkg.in/yaml.v3"
)

// TestEmbeddedParses reports a broken catalog.yaml as an error with its
// line, rather than as Default's panic.
func TestEmbeddedParses(t *testing.T) {
	b := newBuilder()
	if err := b.add("catalog.yaml", embedded, true); err != nil {
		t.Fatal(err)
	}
	if a, b := Default(), Default(); a != b {
		t.Error("Default parses the embedded file again on each call")
	}
}

// TestLint is the review checklist of catalog.yaml as a test.
func TestLint(t *testing.T) {
	c := Default()
	entries := c.Entries()
	if len(entries) < 400 {
		t.Fatalf("catalog has %d entries; expected the ~450 of the reference document", len(entries))
	}
	seen := map[string]int{}
	used := map[string]bool{}
	for i, e := range entries {
		where := e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Pattern
		if j, dup := seen[e.Pattern]; dup {
			t.Errorf("%s: duplicate of entry %d", where, j)
		}
		seen[e.Pattern] = i
		if r := validPattern(e.Pattern); r != "" {
			t.Errorf("%s: invalid pattern: %s", where, r)
		}
		if _, ok := c.Service(e.Service); !ok {
			t.Errorf("%s: unknown service %q", where, e.Service)
		}
		used[e.Service] = true
		if !KnownPhase(e.Phase) {
			t.Errorf("%s: unknown phase %q", where, e.Phase)
		}
		if !e.Required.Valid() {
			t.Errorf("%s: required %q", where, e.Required)
		}
		if e.Purpose == "" || e.Source == "" || e.Example == "" {
			t.Errorf("%s: incomplete: purpose %q source %q example %q", where, e.Purpose, e.Source, e.Example)
		}
		if len(e.Purpose) > 120 {
			t.Errorf("%s: purpose is %d characters; keep it to one short line", where, len(e.Purpose))
		}
		if !hasStar(e.Pattern) && e.Example != e.Pattern {
			t.Errorf("%s: exact entry with example %q", where, e.Example)
		}
		if !e.HostPattern().Match(e.Example) {
			t.Errorf("%s: example %q does not match", where, e.Example)
		}
		if _, ok := c.Lookup(e.Example); !ok {
			t.Errorf("%s: Lookup(example %q) finds nothing", where, e.Example)
		}
		if !hasStar(e.Pattern) {
			if m, _ := c.Lookup(e.Pattern); m.Entry.Pattern != e.Pattern {
				t.Errorf("%s: Lookup of the exact host gives %q", where, m.Entry.Pattern)
			}
		}
	}
	for _, s := range c.Services() {
		if !used[s.ID] {
			t.Errorf("service %s has no entries", s.ID)
		}
	}
}

// TestServiceColours checks the palette: valid, distinct from each other,
// and neither too light for white backgrounds nor too dark for dark ones.
func TestServiceColours(t *testing.T) {
	svcs := Default().Services()
	if len(svcs) < 30 {
		t.Fatalf("%d services", len(svcs))
	}
	rgb := func(s string) [3]float64 {
		var out [3]float64
		for i := range 3 {
			v, err := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
			if err != nil {
				t.Fatalf("colour %q: %v", s, err)
			}
			out[i] = float64(v)
		}
		return out
	}
	lum := func(c [3]float64) float64 { // WCAG relative luminance
		var l [3]float64
		for i, v := range c {
			v /= 255
			if v <= 0.03928 {
				l[i] = v / 12.92
			} else {
				l[i] = math.Pow((v+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	for i, a := range svcs {
		if !validColor(a.Color) {
			t.Errorf("%s: colour %q", a.ID, a.Color)
			continue
		}
		ca := rgb(a.Color)
		white := 1.05 / (lum(ca) + 0.05)
		black := (lum(ca) + 0.05) / 0.05
		if white < 1.6 || black < 2.5 {
			t.Errorf("%s: colour %s has contrast %.1f on white, %.1f on black", a.ID, a.Color, white, black)
		}
		for _, b := range svcs[i+1:] {
			cb := rgb(b.Color)
			d := math.Sqrt((ca[0]-cb[0])*(ca[0]-cb[0]) + (ca[1]-cb[1])*(ca[1]-cb[1]) + (ca[2]-cb[2])*(ca[2]-cb[2]))
			if d < 30 {
				t.Errorf("services %s %s and %s %s are too alike (distance %.0f)", a.ID, a.Color, b.ID, b.Color, d)
			}
		}
	}
}

func TestPhases(t *testing.T) {
	p := slices.Clone(phases)
	if len(p) != 26 || p[0] != "network-up" || p[len(p)-1] != "other" {
		t.Fatalf("slices.Clone(phases) = %v", p)
	}
	p[0] = "changed"
	if slices.Clone(phases)[0] != "network-up" {
		t.Fatal("Phases returns the package's own slice")
	}
}

func TestLookup(t *testing.T) {
	c := Default()
	tests := []struct {
		host    string
		pattern string // "" = no match
		service string
		region  string
	}{
		{"ztd.dds.microsoft.com", "ztd.dds.microsoft.com", "autopilot", ""},
		{"ZTD.DDS.Microsoft.COM", "ztd.dds.microsoft.com", "autopilot", ""},
		{"ztd.dds.microsoft.com.", "ztd.dds.microsoft.com", "autopilot", ""},
		{"ztd.dds.microsoft.com:443", "ztd.dds.microsoft.com", "autopilot", ""},
		{"ztd.dds.microsoft.com.:443", "ztd.dds.microsoft.com", "autopilot", ""},
		// exact beats the wildcard that also covers it
		{"cs.dds.microsoft.com", "cs.dds.microsoft.com", "autopilot", ""},
		{"fd.dds.microsoft.com", "fd.dds.microsoft.com", "cdp", ""},
		{"other.dds.microsoft.com", "*.dds.microsoft.com", "autopilot", ""},
		{"a.b.dds.microsoft.com", "*.dds.microsoft.com", "autopilot", ""},
		// "*.suffix" is any depth under the suffix, not the suffix itself
		{"dds.microsoft.com", "dds.microsoft.com", "cdp", ""},
		{"msftconnecttest.com", "", "", ""},
		{"x.y.msftconnecttest.com", "*.msftconnecttest.com", "ncsi", ""},
		// the longest wildcard suffix wins
		{"x.manage.microsoft.com", "*.manage.microsoft.com", "intune", ""},
		{"x.swda01.manage.microsoft.com", "*.swda01.manage.microsoft.com", "intune-win32", ""},
		{"x.tlu.dl.delivery.mp.microsoft.com", "*.tlu.dl.delivery.mp.microsoft.com", "windows-update", ""},
		{"x.dl.delivery.mp.microsoft.com", "*.dl.delivery.mp.microsoft.com", "windows-update", ""},
		{"x.delivery.mp.microsoft.com", "*.delivery.mp.microsoft.com", "windows-update", ""},
		// label globs and inner wildcards
		{"kv801.prod.do.dsp.mp.microsoft.com", "kv*.prod.do.dsp.mp.microsoft.com", "delivery-optimization", ""},
		{"kv.prod.do.dsp.mp.microsoft.com", "kv*.prod.do.dsp.mp.microsoft.com", "delivery-optimization", ""},
		{"xkv801.prod.do.dsp.mp.microsoft.com", "*.prod.do.dsp.mp.microsoft.com", "delivery-optimization", ""},
		{"us-v20.events.data.microsoft.com", "*-v20.events.data.microsoft.com", "telemetry", ""},
		{"contoso-my.sharepoint.com", "*-my.sharepoint.com", "onedrive", ""},
		{"contoso.sharepoint.com", "*.sharepoint.com", "onedrive", ""},
		{"watson.ppe.telemetry.microsoft.com", "watson.*.microsoft.com", "telemetry", ""},
		{"watson.microsoft.com", "", "", ""},
		{"unitedstates.smartscreen-prod.microsoft.com", "*.smartscreen-prod.microsoft.com", "defender", ""},
		{"wd-prod-ss-smartscreen-prod.microsoft.com", "*smartscreen-prod.microsoft.com", "defender", ""},
		{"wpad", "wpad.*", "wpad", ""},
		{"wpad.corp.example", "wpad.*", "wpad", ""},
		{"wpadx.corp.example", "", "", ""},
		// scale-unit tokens
		{"fef.msua01.manage.microsoft.com", "fef.*.manage.microsoft.com", "intune-checkin", "MSUA01"},
		{"FEF.AMSUA0602.manage.microsoft.com", "fef.*.manage.microsoft.com", "intune-checkin", "AMSUA0602"},
		{"fef.emsua0101.manage.microsoft.com", "fef.*.manage.microsoft.com", "intune-checkin", "EMSUA0101"},
		{"portal.fei.msub05.manage.microsoft.com", "portal.fei.*.manage.microsoft.com", "intune-checkin", "MSUB05"},
		{"m.fei.msuc03.manage.microsoft.com", "m.fei.*.manage.microsoft.com", "intune-checkin", "MSUC03"},
		{"fei.amsud0101.manage.microsoft.com", "fei.*.manage.microsoft.com", "intune-checkin", "AMSUD0101"},
		{"fef.msuz77.manage.microsoft.com", "fef.*.manage.microsoft.com", "intune-checkin", "MSUZ77"},
		{"fef.cnpasu01.manage.microsoftonline.cn", "fef.*.manage.microsoftonline.cn", "intune-checkin", "CNPASU01"},
		{"r.manage.microsoft.com", "r.manage.microsoft.com", "intune-checkin", ""},
		{"fef.notaunit.manage.microsoft.com", "fef.*.manage.microsoft.com", "intune-checkin", ""},
		{"msua01.example.com", "", "", ""},
		// hostile names: never a substring match
		{"manage.microsoft.com.evil.test", "", "", ""},
		{"notmanage.microsoft.com", "", "", ""},
		{"evilmanage.microsoft.com.attacker.net", "", "", ""},
		{"ztd.dds.microsoft.com.evil.test", "", "", ""},
		{"xztd.dds.microsoft.com", "*.dds.microsoft.com", "autopilot", ""},
		{"xdds.microsoft.com", "", "", ""},
		{"evil.example", "", "", ""},
		{"microsoft.com", "", "", ""},
		// IP literals and junk are unknown
		{"1.2.3.4", "", "", ""},
		{"1.2.3.4:443", "", "", ""},
		{"[2001:db8::1]:443", "", "", ""},
		{"2001:db8::1", "", "", ""},
		{"::1", "", "", ""},
		{"", "", "", ""},
		{".", "", "", ""},
		{"..", "", "", ""},
		{"ztd..dds.microsoft.com", "", "", ""},
		{".ztd.dds.microsoft.com", "", "", ""},
		{"ztd.dds.microsoft.com:", "", "", ""},
		{"ztd.dds.microsoft.com:https", "", "", ""},
		{"ztd dds.microsoft.com", "", "", ""},
		{"ztd.dds.microsoft.com/path", "", "", ""},
		{"*.manage.microsoft.com", "", "", ""},
		{strings.Repeat("a.", 130) + "manage.microsoft.com", "", "", ""},
		{strings.Repeat("a", 64) + ".manage.microsoft.com", "", "", ""},
		// IDNA: Unicode labels are converted; a look-alike is not Microsoft's
		{"ztd.dds.micrоsoft.com", "", "", ""}, // Cyrillic о
		{"ZTD.DDS.MICROSOFT.COM", "ztd.dds.microsoft.com", "autopilot", ""},
		{"ｚｔｄ.dds.microsoft.com", "ztd.dds.microsoft.com", "autopilot", ""},                                                         // full-width letters map to ASCII
		{strings.Repeat("ａ", 90) + ".manage.microsoft.com", "", "", ""},                                                             // 270 bytes, but a 90-letter label
		{strings.Repeat("ａ", 63) + "." + strings.Repeat("ｂ", 30) + ".manage.microsoft.com", "*.manage.microsoft.com", "intune", ""}, // 301 bytes of UTF-8, 115 of ASCII
		{"bücher.manage.microsoft.com", "*.manage.microsoft.com", "intune", ""},
		{"xn--bcher-kva.manage.microsoft.com", "*.manage.microsoft.com", "intune", ""},
	}
	for _, tt := range tests {
		m, ok := c.Lookup(tt.host)
		if ok != (tt.pattern != "") {
			t.Errorf("Lookup(%q) ok = %v (%s), want %v", tt.host, ok, m.Entry.Pattern, !ok)
			continue
		}
		if !ok {
			continue
		}
		if m.Entry.Pattern != tt.pattern || m.Service.ID != tt.service || m.Region != tt.region {
			t.Errorf("Lookup(%q) = %s %s %q, want %s %s %q", tt.host, m.Entry.Pattern, m.Service.ID, m.Region, tt.pattern, tt.service, tt.region)
		}
		if m.Entry.Service != m.Service.ID || m.Service.Name == "" || m.Service.Color == "" {
			t.Errorf("Lookup(%q): service %+v for entry service %q", tt.host, m.Service, m.Entry.Service)
		}
	}
}

// TestLookupMatchesOracle compares Lookup with the plain statement of the
// rules (pattern.Match of every entry, best score wins) on every example
// host and on variations of it.
func TestLookupMatchesOracle(t *testing.T) {
	c := Default()
	n := 0
	for _, e := range c.Entries() {
		base := e.Example
		for _, h := range []string{base, "x." + base, "x.y." + base, base[strings.IndexByte(base, '.')+1:],
			"x" + base, base + ".evil.test", strings.Replace(base, ".", "-", 1)} {
			checkOracle(t, c, h)
			n++
		}
	}
	t.Logf("%d hosts compared", n)
}

func checkOracle(t *testing.T, c *Catalog, host string) {
	t.Helper()
	var buf [maxHost]byte
	name, ok := normalize(host, &buf)
	want, wantScore := -1, -2
	if ok {
		for i, e := range c.entries {
			if !e.HostPattern().Match(string(name)) {
				continue
			}
			s := patternScore(e.Pattern)
			if s > wantScore || s == wantScore && i < want {
				want, wantScore = i, s
			}
		}
	}
	m, got := c.Lookup(host)
	if got != (want >= 0) {
		t.Fatalf("Lookup(%q) ok = %v (%s), oracle says %v", host, got, m.Entry.Pattern, want >= 0)
	}
	if got && m.Entry.Pattern != c.entries[want].Pattern {
		t.Fatalf("Lookup(%q) = %s, oracle says %s", host, m.Entry.Pattern, c.entries[want].Pattern)
	}
}

func FuzzLookup(f *testing.F) {
	for _, s := range []string{
		"fef.msua01.manage.microsoft.com", "manage.microsoft.com.evil.test", "kv801.prod.do.dsp.mp.microsoft.com",
		"WATSON.a.b.microsoft.com.", "wpad", "1.2.3.4:80", "[::1]:443", "bücher.sharepoint.com", "x-my.sharepoint.com",
		"a..b", ".", "wd-smartscreen-prod.microsoft.com", "fef.amsua0602.manage.microsoft.com:443",
	} {
		f.Add(s)
	}
	c := Default()
	f.Fuzz(func(t *testing.T, host string) {
		var buf [maxHost]byte
		name, ok := normalize(host, &buf)
		want, wantOK := normalizeRef(host)
		if ok != wantOK || ok && string(name) != want {
			t.Fatalf("normalize(%q) = %q %v, want %q %v", host, name, ok, want, wantOK)
		}
		checkOracle(t, c, host)
		m, ok := c.Lookup(host)
		if !ok {
			return
		}
		// Case and a trailing dot do not change the answer.
		if ascii(host) {
			m2, ok2 := c.Lookup(strings.ToUpper(host))
			if !ok2 || m2.Entry.Pattern != m.Entry.Pattern || m2.Region != m.Region {
				t.Fatalf("Lookup(%q) = %s but upper case gives %s %v", host, m.Entry.Pattern, m2.Entry.Pattern, ok2)
			}
		}
		if m.Region != "" && (strings.ToUpper(m.Region) != m.Region || !strings.Contains(strings.ToUpper(host), m.Region) && ascii(host)) {
			t.Fatalf("Lookup(%q) region %q", host, m.Region)
		}
	})
}

// normalizeRef is the plain statement of normalize's rules.
func normalizeRef(host string) (string, bool) {
	if strings.HasPrefix(host, "[") || strings.Count(host, ":") > 1 {
		return "", false
	}
	if h, port, ok := strings.Cut(host, ":"); ok {
		if _, err := strconv.ParseUint(port, 10, 32); err != nil || len(port) > 5 || strings.ContainsAny(port, "+-") {
			return "", false
		}
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	if !ascii(host) {
		if len(host) > maxIDNAInput {
			return "", false
		}
		a, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return "", false
		}
		host = a
	}
	host = strings.ToLower(host)
	if host == "" || len(host) > maxHost {
		return "", false
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return "", false
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", false
	}
	return host, true
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestLookupAllocs(t *testing.T) {
	c := Default()
	for _, h := range []string{"fef.msua01.manage.microsoft.com", "Login.MicrosoftOnline.com:443", "kv801.prod.do.dsp.mp.microsoft.com", "evil.example", "1.2.3.4"} {
		if a := testing.AllocsPerRun(100, func() { c.Lookup(h) }); a != 0 {
			t.Errorf("Lookup(%q) allocates %.1f times", h, a)
		}
	}
}

// benchHosts is a realistic mix: exact hits, wildcard hits (some deep, some
// with a port or upper case) and misses, roughly in capture proportions.
var benchHosts = []string{
	"login.microsoftonline.com", "ztd.dds.microsoft.com", "ocsp.digicert.com", "r.manage.microsoft.com",
	"fef.msua01.manage.microsoft.com", "kv801.prod.do.dsp.mp.microsoft.com", "2.tlu.dl.delivery.mp.microsoft.com",
	"us-v20.events.data.microsoft.com", "contoso-my.sharepoint.com", "Settings-Win.Data.Microsoft.com:443",
	"fe3cr.delivery.mp.microsoft.com", "client.wns.windows.com", "officecdn.microsoft.com.edgesuite.net",
	"www.example.com", "cdn.jsdelivr.net", "manage.microsoft.com.evil.test", "10.0.0.1", "update.googleapis.com",
	"dns.google", "api.github.com",
}

func BenchmarkLookup(b *testing.B) {
	c := Default()
	b.ReportAllocs()
	hits := 0
	for i := 0; b.Loop(); i++ {
		if _, ok := c.Lookup(benchHosts[i%len(benchHosts)]); ok {
			hits++
		}
	}
	if hits == 0 {
		b.Fatal("no hits")
	}
}

func TestLoadUserFile(t *testing.T) {
	dir := t.TempDir()
	user := filepath.Join(dir, "mine.yaml")
	write(t, user, `# a lab's extras
services:
  - {id: lab-proxy, name: Lab proxy, color: "#123456"}
  - {id: autopilot, name: Autopilot (renamed)}
entries:
  - pattern: proxy.lab.example
    service: lab-proxy
    phase: network-up
    purpose: the lab's own proxy
  - pattern: "*.corp.example"
    service: lab-proxy
    phase: other
  - pattern: ztd.dds.microsoft.com
    service: autopilot
    phase: profile
    required: yes
    purpose: overridden by the lab
`)
	c, err := Load(user)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := c.Lookup("proxy.lab.example")
	if !ok || m.Service.Name != "Lab proxy" || m.Service.Color != "#123456" || m.Entry.Required != RequiredUnknown ||
		m.Entry.Source != "user file "+user || m.Entry.Line != 6 {
		t.Errorf("added entry: %+v %v", m, ok)
	}
	m, _ = c.Lookup("a.corp.example")
	if m.Entry.Example != "x.corp.example" {
		t.Errorf("derived example %q", m.Entry.Example)
	}
	m, _ = c.Lookup("ztd.dds.microsoft.com")
	if m.Entry.Purpose != "overridden by the lab" || m.Service.Name != "Autopilot (renamed)" || m.Service.Color != "#e15759" {
		t.Errorf("override: %+v", m)
	}
	def := Default()
	if got, want := len(c.Entries()), len(def.Entries())+2; got != want {
		t.Errorf("%d entries, want %d", got, want)
	}
	// The override keeps its place in the order.
	i := slices.IndexFunc(c.Entries(), func(e Entry) bool { return e.Pattern == "ztd.dds.microsoft.com" })
	j := slices.IndexFunc(def.Entries(), func(e Entry) bool { return e.Pattern == "ztd.dds.microsoft.com" })
	if i != j {
		t.Errorf("override moved from %d to %d", j, i)
	}
	if m, _ := def.Lookup("ztd.dds.microsoft.com"); m.Entry.Purpose == "overridden by the lab" {
		t.Error("Load changed the default catalog")
	}
	// Several files apply in order.
	second := filepath.Join(dir, "second.yaml")
	write(t, second, "entries:\n  - {pattern: proxy.lab.example, service: third-party, phase: other}\n")
	c, err = Load(user, second)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Lookup("proxy.lab.example"); m.Service.ID != "third-party" {
		t.Errorf("second file did not override: %+v", m.Entry)
	}
}

// TestPatternsNormalized: a user file's patterns are read by the one
// pattern language, so letter case, a trailing dot and Unicode (IDNA)
// labels mean what they mean in every other pattern.
func TestPatternsNormalized(t *testing.T) {
	c, err := Default().With("mine.yaml", []byte("entries:\n  - {pattern: Bücher.Example., service: autopilot, phase: other}\n  - {pattern: \"*.LAB.example\", service: autopilot, phase: other}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"bücher.example":        "xn--bcher-kva.example",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"a.lab.example":         "*.lab.example",
	} {
		if m, ok := c.Lookup(host); !ok || m.Entry.Pattern != want || !m.Entry.HostPattern().Match(host) {
			t.Errorf("Lookup(%q) = %q %v, want %q", host, m.Entry.Pattern, ok, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, data string
		line       int
		reason     string
	}{
		{"not yaml", "entries: [\n", 1, "not valid YAML"},
		{"tabs", "entries:\n\t- pattern: x\n", 2, "not valid YAML: found character that cannot start any token (a tab: YAML indents with spaces only)"},
		{"colon in value", "entries:\n  - pattern: a.example\n    purpose: note: this\n", 3, `mapping values are not allowed in this context (a value holding ": " needs quotes`},
		{"empty", "", 0, "file is empty"},
		{"scalar", "hello\n", 1, "top level must be a mapping"},
		{"unknown top", "entries: []\nhosts: []\n", 2, `unknown key "hosts"`},
		{"entries not list", "entries: {a: 1}\n", 1, "entries must be a list"},
		{"unknown key", "entries:\n  - pattern: a.example\n    service: autopilot\n    phase: other\n    colour: red\n", 5, `unknown key "colour"`},
		{"no pattern", "entries:\n  - service: autopilot\n    phase: other\n", 2, "entry has no pattern"},
		{"bad pattern", "entries:\n  - pattern: a.exa mple\n    service: autopilot\n    phase: other\n", 2, `pattern "a.exa mple"`},
		{"catch-all", "entries:\n  - pattern: \"*.com\"\n    service: autopilot\n    phase: other\n", 2, "last two labels must be literal"},
		{"ip", "entries:\n  - pattern: 10.0.0.1\n    service: autopilot\n    phase: other\n", 2, "numeric"},
		{"two stars", "entries:\n  - pattern: \"*.a.*.example.com\"\n    service: autopilot\n    phase: other\n", 2, "at most one label"},
		{"question mark", "entries:\n  - pattern: \"h?.example.com\"\n    service: autopilot\n    phase: other\n", 2, `pattern "h?.example.com": '?' is not used in catalog patterns`},
		{"double star", "entries:\n  - pattern: \"kv**.example.com\"\n    service: autopilot\n    phase: other\n", 2, `pattern "kv**.example.com": '**' means no more than '*'`},
		{"unknown service", "entries:\n  - pattern: a.example\n    service: nope\n    phase: other\n", 3, `unknown service "nope"`},
		{"unknown phase", "entries:\n  - pattern: a.example\n    service: autopilot\n    phase: lunch\n", 4, `unknown phase "lunch"`},
		{"bad required", "entries:\n  - pattern: a.example\n    service: autopilot\n    phase: other\n    required: maybe\n", 5, `required is "maybe"`},
		{"dup in file", "entries:\n  - {pattern: a.example, service: autopilot, phase: other}\n  - {pattern: A.example, service: autopilot, phase: other}\n", 3, "already defined at line 2"},
		{"bad example", "entries:\n  - pattern: \"*.a.example\"\n    service: autopilot\n    phase: other\n    example: b.example\n", 2, "does not match"},
		{"exact example", "entries:\n  - pattern: a.example\n    service: autopilot\n    phase: other\n    example: b.example\n", 2, "must be the pattern itself"},
		{"nested value", "entries:\n  - pattern: a.example\n    service: [autopilot]\n    phase: other\n", 3, "single value"},
		{"bad color", "services:\n  - {id: x, name: X, color: red}\n", 2, "not #rrggbb"},
		{"service no name", "services:\n  - {id: newsvc}\n", 2, "has no name"},
		{"bad id", "services:\n  - {id: New Svc, name: X}\n", 2, "service id"},
		{"multi-line purpose", "entries:\n  - pattern: a.example\n    service: autopilot\n    phase: other\n    purpose: |\n      two\n      lines\n", 5, "one line"},
		{"wildcard in list", "entries:\n  - patterns: [a.example, \"*.b.example\"]\n    service: autopilot\n    phase: other\n", 2, "exact hosts only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Default().With("mine.yaml", []byte(tt.data))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *catalog.Error", err)
			}
			if ce.File != "mine.yaml" || ce.Line != tt.line || !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("err = %v (line %d), want line %d and %q", err, ce.Line, tt.line, tt.reason)
			}
			if tt.line > 0 && !strings.Contains(err.Error(), "mine.yaml:"+strconv.Itoa(tt.line)+":") {
				t.Errorf("message %q does not name file:line", err)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// TestYAMLTypeErrorWords: a yaml.v3 type error never reaches the user with
// a YAML tag or a Go type name in it.
func TestYAMLTypeErrorWords(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		line int
		want string
	}{
		{"line 3: cannot unmarshal !!str `abc` into catalog.entry", 3, "found a single value `abc` where a mapping was expected"},
		{"line 9: cannot unmarshal !!map into []catalog.entry", 9, "found a mapping where a list was expected"},
		{"line 2: cannot unmarshal !!seq into string", 2, "found a list where a single value was expected"},
	} {
		line, got := yamlErrorLine(&yaml.TypeError{Errors: []string{tt.msg}}, nil)
		if line != tt.line || got != tt.want {
			t.Errorf("%q: line %d, %q; want line %d, %q", tt.msg, line, got, tt.line, tt.want)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte("entries:\n  - {pattern: a.example, service: autopilot, phase: other}\n"))
	f.Add([]byte("services:\n  - {id: x, name: X, color: \"#010203\"}\nentries:\n  - {pattern: \"kv*.x.example\", service: x, phase: other, example: kv1.x.example}\n"))
	f.Add([]byte("entries:\n  - patterns: [a.example, b.example]\n    service: autopilot\n    phase: other\n"))
	f.Add([]byte("entries: &a [*a]\n"))
	f.Add([]byte("entries:\n  - pattern: wpad.*\n    service: wpad\n    phase: network-up\n"))
	base := Default()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := base.With("fuzz.yaml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *catalog.Error", err)
			}
			return
		}
		for _, e := range c.Entries() {
			if validPattern(e.Pattern) != "" || !e.HostPattern().Match(e.Example) {
				t.Fatalf("accepted bad entry %+v", e)
			}
			if _, ok := c.Lookup(e.Example); !ok {
				t.Fatalf("example %q of %q not found", e.Example, e.Pattern)
			}
		}
	})
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// patternScore ranks a pattern the way Lookup does, for the tests' oracle.
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

func TestServiceNoise(t *testing.T) {
	c := Default()
	for id, want := range map[string]bool{"cert-status": true, "telemetry": true, "autopilot": false, "office": false} {
		if s, ok := c.Service(id); !ok || s.Noise != want {
			t.Errorf("service %s: noise %v, want %v", id, s.Noise, want)
		}
	}
	// A user file may turn it off, and keeps it when it says nothing.
	c2, err := c.With("mine.yaml", []byte("services:\n  - {id: telemetry, noise: false}\n  - {id: cert-status, name: Certs}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := c2.Service("telemetry"); s.Noise {
		t.Error("noise: false did not turn telemetry's noise off")
	}
	if s, _ := c2.Service("cert-status"); !s.Noise || s.Name != "Certs" {
		t.Errorf("cert-status renamed: %+v, want its noise kept", s)
	}
	if _, err := c.With("bad.yaml", []byte("services:\n  - {id: telemetry, noise: maybe}\n")); err == nil || !strings.Contains(err.Error(), `bad.yaml:2: service "telemetry": noise "maybe": want true or false`) {
		t.Errorf("noise: maybe: %v", err)
	}
}

func TestNoInspect(t *testing.T) {
	c := Default()
	for host, want := range map[string]bool{
		"enrollment.manage.microsoft.com":   true, // by the umbrella entry, not its own
		"fef.msua01.manage.microsoft.com":   true,
		"manage.microsoft.com":              true,
		"discovery.dm.microsoft.com":        true,
		"device.login.microsoftonline.com":  true,
		"intunemaape8.neu.attest.azure.net": true,
		"intel-ek.microsoftaik.azure.net":   true,
		"login.microsoftonline.com":         false,
		"ztd.dds.microsoft.com":             false,
		"officecdn.microsoft.com":           false,
		"example.org":                       false,
	} {
		e, got := c.NoInspect(host)
		if got != want || got && e.NoInspect == "" {
			t.Errorf("NoInspect(%s) = %v %q, want %v", host, got, e.NoInspect, want)
		}
	}
	if j := c.LookupJSON("enrollment.manage.microsoft.com", "enrollment.manage.microsoft.com"); !strings.Contains(j.NoInspect, "INT-EP ID 163") {
		t.Errorf("LookupJSON no_inspect = %q, want the umbrella's reason", j.NoInspect)
	}
	// A user file may mark a host of its own, and unmark one by
	// redefining its entry without the field.
	c2, err := c.With("lab.yaml", []byte("entries:\n  - {pattern: pinned.example.org, service: third-party, phase: other, purpose: x, no-inspect: pins its key}\n  - {pattern: \"*.manage.microsoft.com\", service: intune, phase: mdm-enrollment, purpose: y}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := c2.NoInspect("pinned.example.org"); !ok || e.NoInspect != "pins its key" || e.File != "lab.yaml" {
		t.Errorf("user entry: %v %+v", ok, e)
	}
	if _, ok := c2.NoInspect("enrollment.manage.microsoft.com"); ok {
		t.Error("redefined umbrella entry still marks enrollment.manage.microsoft.com")
	}
}

func TestNoBodies(t *testing.T) {
	c := Default()
	for host, want := range map[string]bool{
		"login.microsoftonline.com":       true,
		"login.windows.net":               true,
		"login.live.com":                  true,
		"activation-v2.sls.microsoft.com": true,
		"licensing.mp.microsoft.com":      true,
		"ztd.dds.microsoft.com":           false,
		"officecdn.microsoft.com":         false,
		"example.org":                     false,
	} {
		e, got := c.NoBodies(host)
		if got != want || got && e.NoBodies == "" {
			t.Errorf("NoBodies(%s) = %v %q, want %v", host, got, e.NoBodies, want)
		}
	}
	if j := c.LookupJSON("login.live.com", "login.live.com"); !strings.Contains(j.NoBodies, "tokens") {
		t.Errorf("LookupJSON no_bodies = %q, want the entry's reason", j.NoBodies)
	}
	c2, err := c.With("lab.yaml", []byte("entries:\n  - {pattern: vault.example.org, service: third-party, phase: other, purpose: x, no-bodies: holds secrets}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := c2.NoBodies("vault.example.org"); !ok || e.NoBodies != "holds secrets" || e.File != "lab.yaml" {
		t.Errorf("user entry: %v %+v", ok, e)
	}
}

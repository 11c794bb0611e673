package report_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// seedFixture is the reconstruction of the seed's run, made and checked by
// the timeline package's tests.
const seedFixture = "../timeline/testdata/seed.jsonl"

func readJSONL(t testing.TB, name string) []flow.Flow {
	t.Helper()
	fh, err := os.Open(filepath.FromSlash(name))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []flow.Flow
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var f flow.Flow
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("%s line %d: %v", name, n, err)
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// seedTimeline builds the seed's timeline with the seed's clock: T0 ten
// seconds before the first flow.
func seedTimeline(t testing.TB) *timeline.Timeline {
	t.Helper()
	flows := readJSONL(t, seedFixture)
	tl, err := timeline.Build(flows, catalog.Default(), timeline.Options{T0: flows[0].Start.Add(-10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	tl.Session.Number = 1
	return tl
}

var seedOpts = report.Options{Generator: "pilotwire (test)", Source: "seed.jsonl"}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

// TestSeedGolden keeps each format's rendering of the seed's run.
func TestSeedGolden(t *testing.T) {
	tl := seedTimeline(t)
	for _, tt := range []struct{ format, file string }{
		{"text", "seed.txt"},
		{"markdown", "seed.md"},
		{"json", "seed.json"},
		{"html", "seed.html"},
	} {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := report.Render(&buf, tt.format, tl, seedOpts); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, buf.Bytes())
		})
	}
}

// TestSeedText checks the text report reads like the seed: its lines, in
// order, at the seed's times, within 100 columns.
func TestSeedText(t *testing.T) {
	var buf bytes.Buffer
	if err := report.Text(&buf, seedTimeline(t), seedOpts); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for i, line := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(line); n > 100 {
			t.Errorf("line %d has %d columns: %q", i+1, n, line)
		}
	}
	// The seed's annotations, seed times, in order. Continuation lines
	// are joined first.
	out = regexp.MustCompile(`\n +`).ReplaceAllString(out, " ")
	want := []string{
		"00:10  First signs of life — login.live.com (Microsoft account (device identity)), http://ocsp.digicert.com",
		"00:12  Autopilot profile download — ztd.dds.microsoft.com",
		"00:18  Windows activation — activation-v2.sls.microsoft.com",
		"00:18  OOBE update check — sls.update.microsoft.com",
		"00:45  Likely reboot — http://www.msftconnecttest.com",
		"01:28  Entra ID sign-in — login.microsoftonline.com",
		"02:01  Intune enrollment — enrollment.manage.microsoft.com",
		"02:10  First Intune check-in — fef.msua01.manage.microsoft.com",
		"Intune scale unit MSUA01",
		"02:56  Office download — http://officecdn.microsoft.com",
		"03:22  Push notifications (WNS) — client.wns.windows.com",
		"03:51  OneDrive — g.live.com",
		"04:45  Teams — statics.teams.microsoft.com",
		"11:39  Trusted root list refresh — http://ctldl.windowsupdate.com",
		"16:19  Third-party content — http://dl.google.com",
		"GoogleUpdateSetup.exe",
		"20:13  Last flow",
		"the run took 20:04",
	}
	pos := 0
	for _, w := range want {
		i := strings.Index(out[pos:], w)
		if i < 0 {
			t.Fatalf("text report lacks %q after offset %d:\n%s", w, pos, out)
		}
		pos += i + len(w)
	}
}

// TestHostileNames: names and URLs come from the network. Each renderer
// must show them as text, never as markup.
func TestHostileNames(t *testing.T) {
	evil := `<script>alert(1)</script>.example`
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	flows := []flow.Flow{
		{ID: 1, Start: start, End: start.Add(time.Second), Client: "10.0.0.9", Device: `dev"><img src=x onerror=alert(2)>`,
			Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: evil, Port: 80,
			URL: `http://` + evil + `/"><script>alert(3)</script>|x` + "`\x1b[31m", Status: 200, BytesDown: 10},
		{ID: 2, Start: start.Add(time.Second), End: start.Add(2 * time.Second), Client: "10.0.0.9", Kind: flow.KindConnect,
			Host: "login.live.com", SNI: "</title><script>alert(4)</script>", Port: 443, Status: 200, Error: "<b>bad</b>\x07"},
	}
	tl, err := timeline.Build(flows, catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range report.Formats {
		var buf bytes.Buffer
		if err := report.Render(&buf, format, tl, report.Options{Source: "<script>src</script>"}); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if format == "json" {
			var v map[string]any
			if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
				t.Fatalf("json: %v", err)
			}
			if !strings.Contains(fmt.Sprint(v), "<script>alert(1)</script>.example") {
				t.Errorf("json lost the host name")
			}
			continue
		}
		for _, bad := range []string{"\x1b", "\x07"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s output contains control character %q", format, bad)
			}
		}
		markup := out
		switch format {
		case "text":
			// Plain text shows names as they are; only control
			// characters are a danger there.
			markup = ""
		case "markdown":
			// Code spans show their content literally.
			markup = stripCodeSpans(out)
		}
		for _, bad := range []string{"<script", "<img", "<b>"} {
			if strings.Contains(markup, bad) {
				t.Errorf("%s output contains %q as markup", format, bad)
			}
		}
		if format == "html" && !strings.Contains(out, "&lt;script&gt;alert(1)&lt;/script&gt;.example") {
			t.Errorf("html does not show the hostile host as text")
		}
	}
}

func TestEmptyTimeline(t *testing.T) {
	tl, err := timeline.Build(nil, catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range report.Formats {
		var buf bytes.Buffer
		if err := report.Render(&buf, format, tl, report.Options{}); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if buf.Len() == 0 {
			t.Errorf("%s: empty output", format)
		}
	}
	if err := report.Render(new(bytes.Buffer), "pdf", tl, report.Options{}); err == nil {
		t.Error("format pdf: no error")
	}
}

// stripCodeSpans removes Markdown code spans (`x`, “x“) from s.
func stripCodeSpans(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '`')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		n := len(s[i:]) - len(strings.TrimLeft(s[i:], "`"))
		fence := s[i : i+n]
		rest := s[i+n:]
		j := strings.Index(rest, fence)
		if j < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		s = rest[j+n:]
	}
}

// TestJSONSchemaDocumented: every field the JSON report writes is
// described in docs/report-json.md, and the version matches.
func TestJSONSchemaDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/report-json.md")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := report.JSON(&buf, seedTimeline(t), seedOpts); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				keys[k] = true
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	if len(keys) < 50 {
		t.Fatalf("only %d keys in the JSON report", len(keys))
	}
	for k := range keys {
		if !bytes.Contains(doc, []byte("`"+k+"`")) {
			t.Errorf("JSON field %q is not described in docs/report-json.md", k)
		}
	}
	if !bytes.Contains(doc, []byte(fmt.Sprintf("`schema_version` | int | %d", report.SchemaVersion))) {
		t.Errorf("docs/report-json.md does not give schema_version %d", report.SchemaVersion)
	}
}

// TestNotProvisioning: a session with no Autopilot, enrollment or ESP
// milestone says so plainly in every format; the seed's does not.
func TestNotProvisioning(t *testing.T) {
	const sentence = "This session does not look like Autopilot provisioning: no Autopilot, enrollment or ESP traffic was seen."
	flows := readJSONL(t, "../timeline/testdata/negative/consumer-signin.jsonl")
	tl, err := timeline.Build(flows, catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed := seedTimeline(t)
	for _, format := range report.Formats {
		var buf, seedBuf bytes.Buffer
		if err := report.Render(&buf, format, tl, report.Options{Width: 200}); err != nil {
			t.Fatal(err)
		}
		if err := report.Render(&seedBuf, format, seed, report.Options{Width: 200}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), sentence) {
			t.Errorf("%s report of a consumer sign-in does not say %q", format, sentence)
		}
		if strings.Contains(seedBuf.String(), "does not look like") {
			t.Errorf("%s report of the seed says it does not look like provisioning", format)
		}
	}
	var doc struct {
		Provisioning *bool  `json:"provisioning"`
		Verdict      string `json:"verdict"`
	}
	var buf bytes.Buffer
	if err := report.JSON(&buf, tl, report.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil || doc.Provisioning == nil || *doc.Provisioning || doc.Verdict != sentence {
		t.Errorf("JSON provisioning=%v verdict=%q (%v); want false and the sentence", doc.Provisioning, doc.Verdict, err)
	}
}

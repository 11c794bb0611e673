package report_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/testutil"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

func newBrowser(t *testing.T) *testutil.Browser { return testutil.NewBrowser(t, 60*time.Second) }

func writeHTML(t *testing.T, tl *timeline.Timeline) string {
	t.Helper()
	var buf bytes.Buffer
	if err := report.HTML(&buf, tl, seedOpts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + filepath.ToSlash(path)
}

// TestHTMLInChromium loads the seed's HTML report in headless Chromium: no
// console errors or exceptions, one swimlane lane per service seen, one
// marker per milestone. TestHTMLLayoutInChromium checks how it looks and
// keeps the screenshots.
func TestHTMLInChromium(t *testing.T) {
	b := newBrowser(t)
	tl := seedTimeline(t)
	ctx := b.Ctx
	if err := chromedp.Do(ctx, chromedp.Navigate(writeHTML(t, tl)), chromedp.WaitReady(chromedp.CSS("#swimlane"))); err != nil {
		t.Fatal(err)
	}
	count := func(sel string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	lanes, markers := count("#swimlane .lane"), count("#swimlane .marker")
	phaseRows, bars := count("table.phases tbody tr"), count("#bytes .bar")
	laneIDs, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('#swimlane .lane')).map(g => g.dataset.service)`))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range tl.Services {
		want = append(want, s.Service.ID)
	}
	if lanes != len(tl.Services) || !slices.Equal(laneIDs, want) {
		t.Errorf("swimlane has %d lanes %v, want one per service seen: %v", lanes, laneIDs, want)
	}
	if markers != len(tl.Milestones) {
		t.Errorf("swimlane has %d milestone markers, want %d", markers, len(tl.Milestones))
	}
	if phaseRows != len(tl.Phases) || bars != len(tl.Services) {
		t.Errorf("phase table has %d rows (want %d), bytes chart %d bars (want %d)", phaseRows, len(tl.Phases), bars, len(tl.Services))
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page logged problems: %q", p)
	}
}

// TestHostileHTMLInChromium: a host name and URL carrying script must stay
// text in a real browser: no dialog, no script element, no console error.
func TestHostileHTMLInChromium(t *testing.T) {
	b := newBrowser(t)
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	evil := `"><script>alert(1)</script><svg onload=alert(2)>.example`
	flows := []flow.Flow{
		{ID: 1, Start: start, End: start.Add(time.Second), Client: "10.0.0.9", Kind: flow.KindHTTP, Scheme: "http",
			Host: evil, URL: "http://x/<img src=x onerror=alert(3)>", Status: 500},
		{ID: 2, Start: start.Add(time.Second), End: start.Add(2 * time.Second), Client: "10.0.0.9", Kind: flow.KindConnect,
			Host: "login.live.com", SNI: `</style><script>alert(4)</script>`},
	}
	tl, err := timeline.Build(flows, catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(writeHTML(t, tl)), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		t.Fatal(err)
	}
	scripts, err := chromedp.Run(b.Ctx, chromedp.Evaluate[int](`document.querySelectorAll('script, [onload], [onerror]').length`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if scripts != 0 {
		t.Errorf("hostile names became %d script elements or handlers", scripts)
	}
	if !strings.Contains(text, "<script>alert(1)</script>") {
		t.Errorf("the hostile host is not shown as text")
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page logged problems: %q", p)
	}
}

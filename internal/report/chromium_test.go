package report_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/testutil"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// browser starts a headless Chromium with a fresh profile and no network
// chatter of its own, and collects console errors, exceptions and dialogs.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exec := testutil.LookPath(t, "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exec),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(ctx)
	t.Cleanup(cancelCtx)
	b := &browser{ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Subscribe before any page of ours loads, so nothing is missed.
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning {
				b.add(fmt.Sprintf("console %s: %s", m.Type, m.Text))
			}
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.add("dialog: " + ev.Message)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return b
}

func (b *browser) add(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, p)
}

// seen returns the problems so far, after a moment for the last console
// messages to arrive (they come on their own goroutine).
func (b *browser) seen() []string {
	time.Sleep(300 * time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.problems)
}

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
	ctx := b.ctx
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
	if p := b.seen(); len(p) > 0 {
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
	if err := chromedp.Do(b.ctx, chromedp.Navigate(writeHTML(t, tl)), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		t.Fatal(err)
	}
	scripts, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('script, [onload], [onerror]').length`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if scripts != 0 {
		t.Errorf("hostile names became %d script elements or handlers", scripts)
	}
	if !strings.Contains(text, "<script>alert(1)</script>") {
		t.Errorf("the hostile host is not shown as text")
	}
	if p := b.seen(); len(p) > 0 {
		t.Errorf("the page logged problems: %q", p)
	}
}

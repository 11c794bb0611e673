package web_test

// The live page in headless Chromium, over the real server (web.New) on a
// real SQLite store holding the seed's run, with the real proxy recording
// into it (Go's client and curl through it) and its Recorder publishing to
// the page's live.Hub. Screenshots of each view (1280 px wide, and 800)
// go to $PILOTWIRE_ARTIFACTS/web.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/testutil"
	"github.com/pilotwire/pilotwire/internal/web"
)

// livePage is the page of a real proxy: a proxy recording into a SQLite
// store holding the seed's run, its Recorder publishing to the page's hub.
type livePage struct {
	url    string
	proxy  string
	origin *httptest.Server
	echo   net.Listener // a TCP echo server, a tunnel's far end
	st     *sqlite.DB
	rec    *flow.Recorder
	// intercepting is what the page's status says of TLS interception.
	intercepting *atomic.Bool
}

// startLivePage starts it all; queue is each viewer's queue in the hub
// (0: the default).
func startLivePage(t *testing.T, token string, queue int) *livePage {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pilotwire.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutFlows(t.Context(), seedFlows(t)); err != nil {
		t.Fatal(err)
	}
	hub := live.NewHub(4, queue)
	rec := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: 100 * time.Millisecond, Publish: hub.Publish})
	t.Cleanup(func() { rec.Close() })
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p := &proxy.Proxy{AllowPrivateTargets: true, Record: rec.Record, ProgressEvery: 100 * time.Millisecond,
		ConnectPorts: []int{echo.Addr().(*net.TCPAddr).Port},
		Devices:      map[netip.Addr]string{netip.MustParseAddr("127.0.0.1"): "lab-vm"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	intercepting := new(atomic.Bool)
	page, err := web.New(web.Options{Store: st, Hub: hub, Catalog: catalog.Default(), Token: token, Source: "pilotwire.db", Version: "test", Mode: "proxy",
		Status: func() web.Status {
			s := p.Stats()
			h := rec.Health()
			return web.Status{Proxy: &web.ProxyStatus{OpenConns: s.OpenConns, OpenTunnels: s.OpenTunnels, Requests: s.Requests, Intercepting: intercepting.Load()},
				Recording: &web.RecordingStatus{OK: h.Recording, Text: h.String()}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(page)
	t.Cleanup(srv.Close)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	t.Cleanup(origin.Close)
	return &livePage{url: srv.URL, proxy: ln.Addr().String(), origin: origin, echo: echo, st: st, rec: rec, intercepting: intercepting}
}

// get sends a request through the proxy, as a device would.
func (lp *livePage) get(t *testing.T, path string) {
	t.Helper()
	pu, _ := url.Parse("http://" + lp.proxy)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 5 * time.Second}
	resp, err := c.Get(lp.origin.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// open loads the page afresh at route (a new document and event stream)
// and waits until the page has started.
func open(t *testing.T, b *testutil.Browser, lp *livePage, route string) {
	t.Helper()
	if err := chromedp.Do(b.Ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(lp.url+"/"+route), chromedp.WaitReady(chromedp.CSS("body.ready"))); err != nil {
		t.Fatalf("open %s: %v", route, err)
	}
}

// click clicks the first element that sel matches.
func click(t *testing.T, b *testutil.Browser, sel string) {
	t.Helper()
	if err := chromedp.Do(b.Ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
}

func eval[T any](t *testing.T, b *testutil.Browser, js string) T {
	t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func shot(t *testing.T, b *testutil.Browser, name string) {
	t.Helper()
	buf, err := chromedp.Run(b.Ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(testutil.ArtifactDir(t, "web"), name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func count(t *testing.T, b *testutil.Browser, sel string) int {
	t.Helper()
	return eval[int](t, b, `document.querySelectorAll(`+strconv.Quote(sel)+`).length`)
}

// waitFor polls js in the page until it is true, for at most d, and
// returns how long that took.
func waitFor(t *testing.T, b *testutil.Browser, js string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("after %s the page still does not satisfy %s", d, js)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noProblems fails the test if the page logged an error or warning, an
// exception, a dialog or a CSP violation (the browser logs those as
// errors), ignoring lines that contain one of except.
func noProblems(t *testing.T, b *testutil.Browser, except ...string) {
	t.Helper()
	var problems []string
	for _, p := range b.Problems() {
		if !slices.ContainsFunc(except, func(e string) bool { return strings.Contains(p, e) }) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		t.Errorf("the page logged problems: %q", problems)
	}
}

// rowsWithURL is JS for the flow rows whose URL ends with suffix.
func rowsWithURL(suffix string) string {
	return `[...document.querySelectorAll('#flows tbody tr')].filter(tr => (tr.querySelector('.url') || {}).textContent?.endsWith(` + strconv.Quote(suffix) + `))`
}

// TestLivePageInChromium drives the page in a real browser while real
// requests (Go's client, curl) go through the real proxy.
func TestLivePageInChromium(t *testing.T) {
	lp := startLivePage(t, "", 0)
	b := testutil.NewBrowser(t, 120*time.Second)
	open(t, b, lp, "#/devices")
	waitFor(t, b, `document.querySelectorAll('#devices-body tr').length === 1 && document.getElementById('status').classList.contains('live')`, 5*time.Second)
	// A new device appears within a second of its first request.
	lp.get(t, "/first")
	took := waitFor(t, b, `[...document.querySelectorAll('#devices-body .dev-label')].some(e => e.textContent === 'lab-vm')`, 3*time.Second)
	t.Logf("new device shown after %s", took)
	if took > time.Second {
		t.Errorf("the new device took %s to appear, want at most 1 s", took)
	}
	shot(t, b, "devices")

	// Live flows: a request shows as a row within a second, on top.
	open(t, b, lp, "#/flows")
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length === 100`, 5*time.Second)
	lp.get(t, "/live-one")
	took = waitFor(t, b, rowsWithURL("/live-one")+`.length === 1`, 3*time.Second)
	t.Logf("new flow shown after %s", took)
	if took > time.Second {
		t.Errorf("a new flow took %s to show, want at most 1 s", took)
	}
	if top := eval[string](t, b, `document.querySelector('#flows tbody tr .url')?.textContent || ''`); !strings.HasSuffix(top, "/live-one") {
		t.Errorf("the newest flow is not on top: the first row's URL is %q", top)
	}
	// curl, through the same proxy.
	curl := testutil.LookPath(t, "curl")
	if out, err := exec.Command(curl, "-sS", "--max-time", "5", "-x", "http://"+lp.proxy, lp.origin.URL+"/by-curl").CombinedOutput(); err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	took = waitFor(t, b, rowsWithURL("/by-curl")+`.length === 1`, 3*time.Second)
	t.Logf("curl's flow shown after %s", took)
	if took > time.Second {
		t.Errorf("curl's flow took %s to show, want at most 1 s", took)
	}

	// Pause: new flows are counted in the pill, not inserted; the pill
	// brings them in.
	click(t, b, "#pause")
	rows := count(t, b, "#flows tbody tr")
	lp.get(t, "/paused-1")
	lp.get(t, "/paused-2")
	waitFor(t, b, `!document.getElementById('newpill').hidden && document.getElementById('newpill').textContent === '2 new'`, 3*time.Second)
	if n := count(t, b, "#flows tbody tr"); n != rows {
		t.Errorf("paused, the table went from %d to %d rows", rows, n)
	}
	click(t, b, "#newpill")
	waitFor(t, b, rowsWithURL("/paused-2")+`.length === 1 && document.getElementById('newpill').hidden`, 3*time.Second)
	shot(t, b, "flows")
	// The picture for the README: the same list with a flow of the
	// seed's run open in the detail panel.
	click(t, b, `#flows tbody tr:nth-child(8)`)
	waitFor(t, b, `!document.getElementById('detail').hidden && document.querySelectorAll('#detail .kv').length === 2`, 3*time.Second)
	shot(t, b, "flows-with-detail")
	click(t, b, "#detail-close")

	// Older pages come from the store (browsing back stops following).
	click(t, b, "#older")
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length > 140`, 3*time.Second)
	// Filters narrow the rows: problems only gives the seed's two.
	click(t, b, `#filters input[name=problems]`)
	waitFor(t, b, `location.hash.includes('problems=1') && document.querySelectorAll('#flows tbody tr').length === 2`, 3*time.Second)
	if got := eval[[]string](t, b, `[...document.querySelectorAll('#flows tbody td.res-refused, #flows tbody td.res-failed')].map(e => e.textContent)`); len(got) != 2 {
		t.Errorf("problems only: %d rows marked refused or failed (%q), want 2", len(got), got)
	}
	// A new flow that does not pass the filter is not inserted.
	lp.get(t, "/not-a-problem")
	time.Sleep(600 * time.Millisecond)
	if n := count(t, b, "#flows tbody tr"); n != 2 {
		t.Errorf("with problems only, the table has %d rows after a good flow, want 2", n)
	}
	// Text on the host: typing narrows the rows.
	open(t, b, lp, "#/flows")
	if err := chromedp.Do(b.Ctx, chromedp.SendKeys(chromedp.CSS(`#filters input[name=q]`), "ztd.dds")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `location.hash.includes('q=ztd.dds') && document.querySelectorAll('#flows tbody tr').length === 2 && [...document.querySelectorAll('#flows tbody .hostname')].every(e => e.textContent.includes('ztd.dds'))`, 3*time.Second)
	// A row's detail: every field, and what the catalog says.
	click(t, b, "#flows tbody tr")
	waitFor(t, b, `!document.getElementById('detail').hidden && document.querySelectorAll('#detail .kv').length === 2`, 3*time.Second)
	detail := eval[string](t, b, `document.getElementById('detail').innerText`)
	for _, want := range []string{"ztd.dds.microsoft.com", "Autopilot deployment service", "sni", "bytes_down", "pattern"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the detail panel lacks %q:\n%s", want, detail)
		}
	}
	shot(t, b, "flow-detail")
	noProblems(t, b)
}

// report is the part of the seed's report JSON the timeline is checked
// against.
type report struct {
	Milestones []struct {
		ID      string  `json:"id"`
		FlowIDs []int64 `json:"flow_ids"`
	} `json:"milestones"`
	Services []struct {
		ID string `json:"id"`
	} `json:"services"`
	Phases []struct {
		ID string `json:"id"`
	} `json:"phases"`
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// TestTimelineInChromium: the seed's session as SVG lanes and markers,
// exactly the report's; a milestone's link (in the table and on the chart)
// leads to exactly the flows behind it; the hosts view's catalog YAML is a
// catalog file pilotwire loads.
func TestTimelineInChromium(t *testing.T) {
	lp := startLivePage(t, "", 0)
	b := testutil.NewBrowser(t, 90*time.Second)
	var rep report
	getJSON(t, lp.url+"/api/sessions/1/report?format=json", &rep)
	// A device's row leads to its session's timeline.
	open(t, b, lp, "#/devices")
	waitFor(t, b, `document.querySelectorAll('#devices-body tr').length === 1`, 5*time.Second)
	click(t, b, `#devices-body tr[data-client="10.0.0.23"]`)
	waitFor(t, b, `location.hash === '#/session/1' && document.getElementById('session-title').textContent === 'Session 1: autopilot-vm (10.0.0.23)'`, 5*time.Second)
	open(t, b, lp, "#/session/1")
	waitFor(t, b, `document.querySelectorAll('#swim svg .lane').length > 0`, 5*time.Second)
	var services []string
	for _, s := range rep.Services {
		services = append(services, s.ID)
	}
	lanes := eval[[]string](t, b, `[...document.querySelectorAll('#swim svg .lane')].map(g => g.getAttribute('data-service'))`)
	markers, rows, bands := count(t, b, "#swim svg .marker"), count(t, b, "#milestones-body tr"), count(t, b, "#swim svg rect.band")
	if !slices.Equal(lanes, services) || len(lanes) != 22 {
		t.Errorf("lanes %q, want one per service of the report, the seed's 22: %q", lanes, services)
	}
	if markers != len(rep.Milestones) || markers != 26 || rows != markers {
		t.Errorf("%d markers and %d milestone rows, want the seed's 26 milestones", markers, rows)
	}
	if bands != len(rep.Phases) {
		t.Errorf("%d phase bands, want %d", bands, len(rep.Phases))
	}
	for _, f := range []string{"html", "markdown", "json"} {
		if href := eval[string](t, b, `document.getElementById('dl-`+f+`').getAttribute('href')`); href != "/api/sessions/1/report?format="+f+"&download=1" {
			t.Errorf("the %s download links to %q", f, href)
		}
	}
	if href := eval[string](t, b, `document.getElementById('dl-har').getAttribute('href')`); href != "/api/sessions/1/har" {
		t.Errorf("the HAR download links to %q", href)
	}
	shot(t, b, "timeline")

	// The milestone with the most flows: its link lists exactly them.
	mi := 0
	for i, m := range rep.Milestones {
		if len(m.FlowIDs) > len(rep.Milestones[mi].FlowIDs) {
			mi = i
		}
	}
	m := rep.Milestones[mi]
	want := slices.Sorted(slices.Values(m.FlowIDs))
	idsShown := `[...document.querySelectorAll('#flows tbody tr')].map(r => Number(r.dataset.id)).sort((a, b) => a - b)`
	click(t, b, fmt.Sprintf(`#milestones-body tr:nth-child(%d) a.flows-link`, mi+1))
	waitFor(t, b, fmt.Sprintf(`location.hash.startsWith('#/flows?ids=') && document.querySelectorAll('#flows tbody tr').length === %d`, len(want)), 3*time.Second)
	if got := eval[[]int64](t, b, idsShown); !slices.Equal(got, want) {
		t.Errorf("milestone %s links to flows %v, want its flows %v", m.ID, got, want)
	}
	if text := eval[string](t, b, `document.getElementById('selection-text').textContent`); !strings.Contains(text, "milestone") {
		t.Errorf("the flows view does not say whose flows it shows: %q", text)
	}
	// The marker on the chart leads to the same flows.
	open(t, b, lp, "#/session/1")
	waitFor(t, b, `document.querySelectorAll('#swim svg .marker').length > 0`, 5*time.Second)
	eval[bool](t, b, fmt.Sprintf(`document.querySelectorAll('#swim svg .marker')[%d].dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}))`, mi))
	waitFor(t, b, fmt.Sprintf(`location.hash.startsWith('#/flows?ids=') && document.querySelectorAll('#flows tbody tr').length === %d`, len(want)), 3*time.Second)
	if got := eval[[]int64](t, b, idsShown); !slices.Equal(got, want) {
		t.Errorf("milestone %s's marker links to flows %v, want %v", m.ID, got, want)
	}

	// Hosts: the seed's unknown host, and YAML that pilotwire loads as a
	// catalog file, after which the host is known.
	open(t, b, lp, "#/hosts")
	const unknown = "oem-agent.contoso-devices.example"
	waitFor(t, b, `[...document.querySelectorAll('#unknown-body td')].some(e => e.textContent === '`+unknown+`')`, 3*time.Second)
	click(t, b, "#copy-yaml")
	waitFor(t, b, `!document.getElementById('yaml').hidden`, 3*time.Second)
	yaml := eval[string](t, b, `document.getElementById('yaml').value`)
	file := filepath.Join(t.TempDir(), "mine.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(file)
	if err != nil {
		t.Fatalf("the page's catalog YAML does not load: %v\n%s", err, yaml)
	}
	if _, ok := cat.Lookup(unknown); !ok {
		t.Errorf("after loading the page's YAML, %s is still unknown:\n%s", unknown, yaml)
	}
	shot(t, b, "hosts")
	noProblems(t, b)
}

// TestNarrowInChromium: at 800 px every view fits the window (nothing to
// scroll sideways).
func TestNarrowInChromium(t *testing.T) {
	lp := startLivePage(t, "", 0)
	b := testutil.NewBrowser(t, 60*time.Second)
	if err := chromedp.Do(b.Ctx, chromedp.EmulateViewport(800, 800)); err != nil {
		t.Fatal(err)
	}
	lp.get(t, "/narrow")
	for _, v := range []struct{ route, ready string }{
		{"#/devices", "#devices-body tr"}, {"#/flows", "#flows tbody tr"}, {"#/session/1", "#swim svg .lane"}, {"#/hosts", "#unknown-body tr"},
	} {
		open(t, b, lp, v.route)
		waitFor(t, b, `document.querySelector('`+v.ready+`') !== null`, 5*time.Second)
		if w := eval[int](t, b, `document.documentElement.scrollWidth`); w > 800 {
			t.Errorf("at 800 px, %s is %d px wide", v.route, w)
		}
		shot(t, b, "narrow-"+strings.Trim(strings.ReplaceAll(v.route, "/", "-"), "#-"))
	}
	noProblems(t, b)
}

// TestLoadOlderAfterTrimInChromium: following a flood, the table keeps
// its newest 2,000 rows; "Load older" then goes on from the bottom row,
// with no gap and no repeat, though the page that carried the cursor was
// dropped.
func TestLoadOlderAfterTrimInChromium(t *testing.T) {
	lp := startLivePage(t, "", 0)
	b := testutil.NewBrowser(t, 90*time.Second)
	open(t, b, lp, "#/flows")
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length === 100 && document.getElementById('status').classList.contains('live')`, 5*time.Second)
	start := time.Now()
	const n = 2050
	for i := range n {
		at := start.Add(time.Duration(i) * time.Millisecond)
		lp.rec.Record(flow.Flow{Key: fmt.Sprintf("flood-%d", i), Start: at, End: at, Client: "10.7.7.7", Source: flow.SourceProxy,
			Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: "flood.example", Port: 80, URL: fmt.Sprintf("http://flood.example/%d", i), Status: 200})
	}
	waitFor(t, b, rowsWithURL(fmt.Sprintf("/%d", n-1))+`.length === 1`, 10*time.Second)
	if got := count(t, b, "#flows tbody tr"); got != 2000 {
		t.Errorf("after %d new flows the table has %d rows, want the newest 2,000", n, got)
	}
	bottom := eval[int64](t, b, `Number(document.querySelector('#flows tbody tr:last-child').dataset.id)`)
	click(t, b, "#older")
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length === 2000 && Number(document.querySelector('#flows tbody tr:last-child').dataset.id) !== `+strconv.FormatInt(bottom, 10), 5*time.Second)
	ids := eval[[]int64](t, b, `[...document.querySelectorAll('#flows tbody tr')].map(r => Number(r.dataset.id))`)
	i := slices.Index(ids, bottom)
	if i < 0 || i+1 >= len(ids) {
		t.Fatalf("after Load older the former bottom row %d is at %d of %d rows", bottom, i, len(ids))
	}
	// The flood's flows have increasing IDs; the next older one follows.
	if ids[i+1] != bottom-1 {
		t.Errorf("after row %d comes %d, want %d (no gap, no repeat)", bottom, ids[i+1], bottom-1)
	}
	if msg := eval[string](t, b, `document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent`); msg != "" {
		t.Errorf("banner after Load older: %q", msg)
	}
	noProblems(t, b)
}

// TestLaggedInChromium: a viewer whose queue overflows is told so and
// catches up from the store: every flow shows in the end.
func TestLaggedInChromium(t *testing.T) {
	lp := startLivePage(t, "", 1) // a queue of one flow: any batch overflows it
	b := testutil.NewBrowser(t, 60*time.Second)
	open(t, b, lp, "#/flows?client=10.8.8.8")
	waitFor(t, b, `document.getElementById('status').classList.contains('live')`, 5*time.Second)
	// The banner, once shown, stays recorded for the check below.
	eval[bool](t, b, `window.__banners = []; new MutationObserver(() => { const e = document.getElementById('banner'); if (!e.hidden) window.__banners.push(e.textContent); }).observe(document.getElementById('banner'), {attributes: true, childList: true, subtree: true}); true`)
	start := time.Now()
	const n = 300
	for i := range n {
		at := start.Add(time.Duration(i) * time.Millisecond)
		lp.rec.Record(flow.Flow{Key: fmt.Sprintf("lag-%d", i), Start: at, End: at, Client: "10.8.8.8", Source: flow.SourceProxy,
			Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: "lag.example", Port: 80, URL: fmt.Sprintf("http://lag.example/%d", i), Status: 200})
	}
	waitFor(t, b, fmt.Sprintf(`document.querySelectorAll('#flows tbody tr').length === %d && document.getElementById('banner').hidden`, n), 10*time.Second)
	banners := eval[[]string](t, b, `window.__banners`)
	if !slices.ContainsFunc(banners, func(s string) bool { return strings.Contains(s, "Fell behind, catching up") }) {
		t.Errorf("the page never said it fell behind; banners: %q", banners)
	}
	noProblems(t, b)
}

// TestHostileFlowInChromium: a flow whose host, URL, SNI, error and device
// label carry script, attribute-breaking and javascript: payloads stays
// text in every view: no element or handler from it, no dialog, no
// console error, no CSP violation.
func TestHostileFlowInChromium(t *testing.T) {
	lp := startLivePage(t, "", 0)
	b := testutil.NewBrowser(t, 90*time.Second)
	open(t, b, lp, "#/flows")
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length === 100 && document.getElementById('status').classList.contains('live')`, 5*time.Second)
	const (
		evilHost  = `"><script>alert(1)</script><img src=x onerror=alert(2)>.example`
		evilURL   = `javascript:alert(3)//"onerror=alert(4) <svg onload=alert(5)>`
		evilLabel = `<b onmouseover=alert(6)>dev</b>`
		evilSNI   = `</style><script>alert(7)</script>`
	)
	now := time.Now()
	lp.rec.Record(flow.Flow{Key: "evil", Start: now, End: now.Add(time.Second), Client: "10.6.6.6", Device: evilLabel,
		Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: evilHost, URL: evilURL, Status: 200, BytesDown: 10, Source: flow.SourceProxy})
	lp.rec.Record(flow.Flow{Key: "evil-2", Start: now.Add(time.Second), End: now.Add(2 * time.Second), Client: "10.6.6.6", Device: evilLabel,
		Kind: flow.KindConnect, Method: "CONNECT", Host: "javascript:alert(8)", Port: 443, SNI: evilSNI, Error: `<i onmouseover=alert(9)>x</i>`,
		Decision: flow.DecisionDenied, Reason: `"onerror=alert(10)`, Source: flow.SourceProxy})
	waitFor(t, b, `[...document.querySelectorAll('#flows tbody .url')].some(e => e.textContent === `+strconv.Quote(evilURL)+`)`, 3*time.Second)
	waitFor(t, b, `[...document.querySelectorAll('#flows tbody .hostname')].some(e => e.textContent === 'javascript:alert(8):443' || e.textContent === 'javascript:alert(8)')`, 3*time.Second)
	check := func(view string) {
		t.Helper()
		scripts := count(t, b, "script")
		foreign := count(t, b, "img, iframe, object, embed, style, b, i, main svg:not(.swimlane), main svg:not(.swimlane) *")
		attrs := eval[[]string](t, b, `[...document.querySelectorAll('*')].flatMap(e => [...e.attributes].filter(a => /^on/i.test(a.name) || (/^(href|src|action|formaction|xlink:href)$/i.test(a.name) && /^\s*javascript:/i.test(a.value))).map(a => e.tagName + ' ' + a.name + '=' + a.value))`)
		if scripts != 1 || foreign != 0 || len(attrs) != 0 {
			t.Errorf("%s: %d script elements (want the page's own one), %d elements from the data, handler or javascript: attributes %q", view, scripts, foreign, attrs)
		}
	}
	check("flows")
	text := eval[string](t, b, `document.getElementById('flows').innerText`)
	for _, want := range []string{evilHost, evilURL, evilLabel, evilSNI} {
		if !strings.Contains(text, want) {
			t.Errorf("the flows view does not show %q as text", want)
		}
	}
	click(t, b, "#flows tbody tr:nth-child(2)")
	waitFor(t, b, `!document.getElementById('detail').hidden && document.querySelectorAll('#detail .kv').length > 0`, 3*time.Second)
	check("detail")
	if d := eval[string](t, b, `document.getElementById('detail').innerText`); !strings.Contains(d, evilURL) || !strings.Contains(d, evilHost) {
		t.Errorf("the detail panel does not show the hostile URL and host as text:\n%s", d)
	}
	open(t, b, lp, "#/devices")
	waitFor(t, b, `document.body.innerText.includes(`+strconv.Quote(evilLabel)+`)`, 3*time.Second)
	check("devices")
	sessions := struct {
		Sessions []struct {
			Number int    `json:"number"`
			Client string `json:"client"`
		} `json:"sessions"`
	}{}
	getJSON(t, lp.url+"/api/sessions", &sessions)
	n := 0
	for _, s := range sessions.Sessions {
		if s.Client == "10.6.6.6" {
			n = s.Number
		}
	}
	open(t, b, lp, "#/session/"+strconv.Itoa(n))
	waitFor(t, b, `document.querySelectorAll('#swim svg .lane').length > 0 && document.getElementById('session-title').textContent.includes('10.6.6.6')`, 5*time.Second)
	check("timeline")
	open(t, b, lp, "#/hosts")
	waitFor(t, b, `document.querySelectorAll('#unknown-body tr').length > 1`, 3*time.Second)
	click(t, b, "#copy-yaml")
	check("hosts")
	noProblems(t, b)
}

// TestTokenInChromium: without the token the browser gets the 401 text;
// with ?token= it gets the page, the token moves to a cookie and out of
// the address bar, and the page works from then on (its API calls and
// event stream ride on the cookie).
func TestTokenInChromium(t *testing.T) {
	const token = "fedcba9876543210fedcba9876543210"
	lp := startLivePage(t, token, 0)
	b := testutil.NewBrowser(t, 60*time.Second)
	resp, err := chromedp.Run(b.Ctx, chromedp.NavigateResponse(lp.url+"/"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusUnauthorized {
		t.Errorf("without the token: status %d, want 401", resp.Status)
	}
	if text := eval[string](t, b, `document.body.innerText`); !strings.Contains(text, "this pilotwire page needs its token") {
		t.Errorf("without the token: %q", text)
	}
	open(t, b, lp, "?token="+token+"#/devices")
	waitFor(t, b, `document.querySelectorAll('#devices-body tr').length === 1 && document.getElementById('status').classList.contains('live')`, 5*time.Second)
	if loc := eval[string](t, b, `location.href`); strings.Contains(loc, token) {
		t.Errorf("the token stayed in the address bar: %s", loc)
	}
	if c := eval[string](t, b, `document.cookie`); strings.Contains(c, token) {
		t.Errorf("the token cookie is readable from script: %q", c)
	}
	lp.get(t, "/with-token")
	waitFor(t, b, `[...document.querySelectorAll('#devices-body .dev-label')].some(e => e.textContent === 'lab-vm')`, 3*time.Second)
	noProblems(t, b, "status of 401") // the first visit, without the token
}

// TestTunnelRowInChromium: an open tunnel shows as open, and its row
// updates in place, not as a second row, when it closes.
func TestTunnelRowInChromium(t *testing.T) {
	lp := startLivePage(t, "", 0)
	b := testutil.NewBrowser(t, 60*time.Second)
	open(t, b, lp, "#/flows?client=lab-vm")
	waitFor(t, b, `document.getElementById('status').classList.contains('live')`, 5*time.Second)
	c, err := net.Dial("tcp", lp.proxy)
	if err != nil {
		t.Fatal(err)
	}
	target := lp.echo.Addr().String()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	c.Write([]byte("hello"))
	io.ReadFull(br, make([]byte, 5))
	row := `[...document.querySelectorAll('#flows tbody tr')].filter(tr => tr.querySelector('.hostname').textContent === ` + strconv.Quote(target) + `)`
	waitFor(t, b, row+`.length === 1 && `+row+`[0].querySelector('td.dur').textContent === 'open'`, 3*time.Second)
	c.Close()
	waitFor(t, b, row+`.length === 1 && `+row+`[0].querySelector('td.dur').textContent !== 'open'`, 3*time.Second)
	noProblems(t, b)
}

// TestStreamGapInChromium: a flow stored after the page read its first
// screen but before its event stream opened (a slow network, held here by
// pausing the stream's request in the browser) still shows: the page
// catches up from the store when the stream opens.
func TestStreamGapInChromium(t *testing.T) {
	lp := startLivePage(t, "", 0)
	b := testutil.NewBrowser(t, 60*time.Second)
	if _, err := chromedp.Call(b.Ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/api/events*"}}}); err != nil {
		t.Fatal(err)
	}
	paused := chromedp.Events(b.Ctx, fetch.RequestPaused)
	open(t, b, lp, "#/flows")
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length === 100`, 5*time.Second)
	lp.get(t, "/in-the-gap")
	time.Sleep(300 * time.Millisecond) // the Recorder's flush interval is 100 ms
	for ev, err := range paused {
		if err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(b.Ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID}); err != nil {
			t.Fatal(err)
		}
		break
	}
	waitFor(t, b, rowsWithURL("/in-the-gap")+`.length === 1 && document.getElementById('status').classList.contains('live')`, 5*time.Second)
	noProblems(t, b)
}

// TestNotRecordingInChromium: a proxy whose store stopped taking flows says
// so in a banner across the page; a page without a live feed (no Hub, as
// `pilotwire serve` over capture files) does not try to open one.
func TestNotRecordingInChromium(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pilotwire.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutFlows(t.Context(), seedFlows(t)); err != nil {
		t.Fatal(err)
	}
	const text = "NOT RECORDING since 02:00:00: disk full"
	page, err := web.New(web.Options{Store: st, Catalog: catalog.Default(), Source: "pilotwire.db", Version: "test", Mode: "proxy",
		Status: func() web.Status {
			return web.Status{Proxy: &web.ProxyStatus{}, Recording: &web.RecordingStatus{OK: false, Text: text}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(page)
	t.Cleanup(srv.Close)
	b := testutil.NewBrowser(t, 60*time.Second)
	open(t, b, &livePage{url: srv.URL}, "#/devices")
	waitFor(t, b, `!document.getElementById('recording').hidden && document.getElementById('devices-body').children.length === 1`, 5*time.Second)
	if got := eval[string](t, b, `document.getElementById('recording').textContent`); got != text {
		t.Errorf("the banner says %q, want %q", got, text)
	}
	if got := eval[string](t, b, `document.getElementById('status-text').textContent`); !strings.Contains(got, "NOT RECORDING") || !strings.Contains(got, "no live feed") {
		t.Errorf("the status line says %q", got)
	}
	time.Sleep(500 * time.Millisecond)
	noProblems(t, b)
}

// TLS interception in the page: a request read inside an intercepted
// tunnel hangs under it (↳), the tunnel says it was intercepted, a tunnel
// left alone says why, and the request's detail shows its redacted
// headers line by line.
func TestInterceptedInChromium(t *testing.T) {
	lp := startLivePage(t, "", 0)
	b := testutil.NewBrowser(t, time.Minute)
	open(t, b, lp, "#/flows")
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length === 100`, 5*time.Second)
	now := time.Now()
	tunnel := flow.Flow{Key: "px-t-1", Start: now, End: now.Add(time.Second), Client: "10.0.0.23", Source: flow.SourceProxy,
		Kind: flow.KindConnect, Method: "CONNECT", Host: "swda01-mscdn.azureedge.net", Port: 443, Status: 200,
		SNI: "swda01-mscdn.azureedge.net", Note: "intercepted (h2), 1 request"}
	req := flow.Flow{Key: "px-t-1-r1", Start: now.Add(100 * time.Millisecond), End: now.Add(900 * time.Millisecond), Client: "10.0.0.23",
		Source: flow.SourceProxy, Kind: flow.KindHTTP, Method: "GET", Scheme: "https", Host: "swda01-mscdn.azureedge.net", Port: 443,
		URL: "https://swda01-mscdn.azureedge.net/a1/7zip.intunewin?sig=REDACTED", Status: 200, BytesDown: 4096, Tunnel: "px-t-1",
		Headers: "> Authorization: REDACTED\n> User-Agent: Microsoft-Delivery-Optimization/10.0\n< Content-Type: application/octet-stream"}
	left := flow.Flow{Key: "px-t-2", Start: now.Add(time.Second), End: now.Add(2 * time.Second), Client: "10.0.0.23", Source: flow.SourceProxy,
		Kind: flow.KindConnect, Method: "CONNECT", Host: "enrollment.manage.microsoft.com", Port: 443, Status: 200,
		Note: "not intercepted: catalog marks enrollment.manage.microsoft.com do not inspect: Intune: enrollment and check-in authenticate the device with its MDM certificate"}
	for _, f := range []flow.Flow{tunnel, req, left} {
		lp.rec.Record(f)
	}
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr.in-tunnel').length === 1`, 3*time.Second)
	if got := eval[string](t, b, `document.querySelector('#flows tbody tr.in-tunnel .tunnel-mark').title`); got != "read inside the intercepted tunnel px-t-1" {
		t.Errorf("tunnel mark title %q", got)
	}
	if n := count(t, b, `#flows tbody .badge.intercepted`); n != 1 {
		t.Errorf("%d intercepted badges, want 1", n)
	}
	if got := eval[string](t, b, `document.querySelector('#flows tbody .badge.passthrough')?.title || ''`); !strings.HasPrefix(got, "catalog marks enrollment.manage.microsoft.com do not inspect: Intune:") {
		t.Errorf("passed-through badge title %q", got)
	}
	click(t, b, `#flows tbody tr.in-tunnel`)
	waitFor(t, b, `!document.getElementById('detail').hidden && document.querySelectorAll('#detail .kv').length >= 1`, 3*time.Second)
	headers := eval[string](t, b, `[...document.querySelectorAll('#detail .kv tr')].find(tr => tr.querySelector('th').textContent === 'headers')?.querySelector('td').innerText || ''`)
	if headers != req.Headers {
		t.Errorf("detail headers %q, want %q", headers, req.Headers)
	}
	shot(t, b, "intercepted")
}

// With interception on, the banner says so and how many hosts were
// learned as pass-through; hovering it names them and why.
func TestLearnedPassThroughInChromium(t *testing.T) {
	lp := startLivePage(t, "", 0)
	lp.intercepting.Store(true)
	if err := lp.st.LearnPassThrough(t.Context(), flow.PassThrough{Host: "cs.dds.microsoft.com", Learned: time.Now(), Client: "10.0.0.23",
		Reason: "client refused the certificate: remote error: tls: bad certificate", Flow: "px-9-1"}); err != nil {
		t.Fatal(err)
	}
	b := testutil.NewBrowser(t, time.Minute)
	open(t, b, lp, "#/flows")
	waitFor(t, b, `document.getElementById('recording').textContent === 'TLS INTERCEPTION ON · 1 host learned as pass-through'`, 5*time.Second)
	if got := eval[string](t, b, `document.getElementById('recording').title`); got != "cs.dds.microsoft.com — client refused the certificate: remote error: tls: bad certificate (10.0.0.23)" {
		t.Errorf("banner title %q", got)
	}
	resp, err := http.Get(lp.url + "/api/passthrough")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []flow.PassThrough
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Host != "cs.dds.microsoft.com" || list[0].Flow != "px-9-1" {
		t.Errorf("/api/passthrough: %+v", list)
	}
}

package web_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
	rec    *flow.Recorder
	token  string
}

func startLivePage(t *testing.T, token string) *livePage {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pilotwire.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutFlows(t.Context(), seedFlows(t)); err != nil {
		t.Fatal(err)
	}
	hub := live.NewHub(4, 0)
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
	page, err := web.New(web.Options{Store: st, Hub: hub, Catalog: catalog.Default(), Token: token, Source: "pilotwire.db", Version: "test", Mode: "proxy",
		Status: func() web.Status {
			s := p.Stats()
			h := rec.Health()
			return web.Status{Proxy: &web.ProxyStatus{OpenConns: s.OpenConns, OpenTunnels: s.OpenTunnels, Requests: s.Requests},
				Recording: &web.RecordingStatus{OK: h.Recording, Text: h.String()}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(page)
	t.Cleanup(srv.Close)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	t.Cleanup(origin.Close)
	return &livePage{url: srv.URL, proxy: ln.Addr().String(), origin: origin, echo: echo, rec: rec, token: token}
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

func shot(t *testing.T, b *testutil.Browser, name string) {
	t.Helper()
	buf, err := chromedp.Run(b.Ctx, chromedp.CaptureScreenshot()) // the 1280×900 viewport: what a user sees first
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
	n, err := chromedp.Run(b.Ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls js in the page until it is true, for at most d.
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

// TestLivePageInChromium drives the page in a real browser while real
// requests go through the real proxy.
func TestLivePageInChromium(t *testing.T) {
	lp := startLivePage(t, "")
	b := testutil.NewBrowser(t, 90*time.Second)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/#/devices"), chromedp.WaitVisible(chromedp.CSS("#devices .card"))); err != nil {
		t.Fatal(err)
	}
	if n := count(t, b, "#devices .card"); n != 1 {
		t.Errorf("%d device cards before any traffic, want the seed's one", n)
	}
	// A new device appears within a second of its first request.
	lp.get(t, "/first")
	took := waitFor(t, b, `[...document.querySelectorAll('#devices .card .name')].some(e => e.textContent === 'lab-vm')`, 3*time.Second)
	if took > time.Second {
		t.Errorf("the new device took %s to appear, want at most 1 s", took)
	}
	shot(t, b, "devices")

	// Live flows: a request shows as a row within a second.
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/#/flows"), chromedp.WaitVisible(chromedp.CSS("#flows tbody tr"))); err != nil {
		t.Fatal(err)
	}
	if n := count(t, b, "#flows tbody tr"); n != 100 {
		t.Errorf("first screen: %d rows, want a page of 100", n)
	}
	lp.get(t, "/live-one")
	took = waitFor(t, b, `[...document.querySelectorAll('#flows tbody td.host')].some(e => e.textContent.endsWith('/live-one'))`, 3*time.Second)
	if took > time.Second {
		t.Errorf("a new flow took %s to show, want at most 1 s", took)
	}
	// Older pages come from the store.
	if err := chromedp.Do(b.Ctx, chromedp.Click(chromedp.CSS("#older"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length > 140`, 3*time.Second)
	// Filters narrow the rows: problems only gives the seed's two.
	if err := chromedp.Do(b.Ctx, chromedp.Click(chromedp.CSS("#f-problems"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length === 2`, 3*time.Second)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/#/flows?q=ztd.dds"), chromedp.Sleep(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length === 2 && [...document.querySelectorAll('#flows tbody td.host')].every(e => e.textContent.includes('ztd.dds'))`, 3*time.Second)
	// A row's detail says what the catalog says.
	if err := chromedp.Do(b.Ctx, chromedp.Click(chromedp.CSS("#flows tbody tr"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `!document.getElementById('detail').classList.contains('hidden') && document.getElementById('detail').textContent.includes('Autopilot deployment service')`, 3*time.Second)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/#/flows")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `document.querySelectorAll('#flows tbody tr').length >= 100`, 3*time.Second)
	shot(t, b, "flows")

	// The seed's timeline: one lane per service, one marker per milestone.
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/#/session/1"), chromedp.WaitVisible(chromedp.CSS("#chart svg"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `document.querySelectorAll('#chart .lane').length > 0`, 3*time.Second)
	lanes, markers, rows := count(t, b, "#chart .lane"), count(t, b, "#chart .marker"), count(t, b, "#milestones tbody tr")
	if lanes != 22 || markers != 26 || rows != markers {
		t.Errorf("timeline: %d lanes, %d markers, %d milestone rows; want the seed's 22 services and 26 milestones", lanes, markers, rows)
	}
	shot(t, b, "timeline")
	// A milestone leads to its flows: the profile download's host.
	if err := chromedp.Do(b.Ctx, chromedp.Click(chromedp.CSS(`#milestones a[data-milestone="profile-download"]`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `location.hash.startsWith('#/flows?session=1') && document.querySelectorAll('#flows tbody tr').length > 0 && [...document.querySelectorAll('#flows tbody td.host')].every(e => e.textContent.includes('ztd.dds.microsoft.com'))`, 3*time.Second)

	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/#/hosts")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `[...document.querySelectorAll('#unknown td')].some(e => e.textContent === 'oem-agent.contoso-devices.example')`, 3*time.Second)
	shot(t, b, "hosts")
	var problems []string
	for _, p := range b.Problems() {
		if !strings.Contains(p, "status of 401") { // the first visit, without the token
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		t.Errorf("the page logged problems: %q", problems)
	}
}

// TestHostileFlowInChromium: a flow whose host and URL carry script stays
// text: no dialog, no script element, no CSP violation or console error.
func TestHostileFlowInChromium(t *testing.T) {
	lp := startLivePage(t, "")
	b := testutil.NewBrowser(t, 60*time.Second)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/#/flows"), chromedp.WaitVisible(chromedp.CSS("#flows tbody tr"))); err != nil {
		t.Fatal(err)
	}
	evilHost := `"><script>alert(1)</script><img src=x onerror=alert(2)>.example`
	evilURL := `javascript:alert(3)//"onerror=alert(4) <svg onload=alert(5)>`
	now := time.Now()
	lp.rec.Record(flow.Flow{Key: "evil", Start: now, End: now.Add(time.Second), Client: "10.6.6.6", Device: `<b onmouseover=alert(6)>dev</b>`,
		Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: evilHost, URL: evilURL, Status: 200, BytesDown: 10, Source: flow.SourceProxy})
	waitFor(t, b, `[...document.querySelectorAll('#flows tbody td.host')].some(e => e.textContent.includes('javascript:alert(3)'))`, 3*time.Second)
	if err := chromedp.Do(b.Ctx, chromedp.Click(chromedp.CSS("#flows tbody tr"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `!document.getElementById('detail').classList.contains('hidden') || document.getElementById('banner').textContent !== ''`, 3*time.Second)
	if msg, _ := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`document.getElementById('banner').textContent`)); msg != "" {
		t.Fatalf("the detail of the hostile flow: %s", msg)
	}
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/#/devices")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `document.body.innerText.includes('<b onmouseover=alert(6)>dev</b>')`, 3*time.Second)
	bad := count(t, b, "main script, main img, main svg [onload], [onerror], [onmouseover], main a[href^='javascript']")
	if bad != 0 {
		t.Errorf("hostile strings became %d elements or handlers", bad)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page logged problems (a dialog or a blocked script would show here): %q", p)
	}
}

// TestTokenInChromium: without the token the browser gets the 401 text;
// with ?token= it gets the page, the token moves to a cookie and out of
// the address bar, and the page works from then on.
func TestTokenInChromium(t *testing.T) {
	const token = "fedcba9876543210fedcba9876543210"
	lp := startLivePage(t, token)
	b := testutil.NewBrowser(t, 60*time.Second)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/")); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "this pilotwire page needs its token") {
		t.Errorf("without the token: %q", text)
	}
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/?token="+token+"#/devices"), chromedp.WaitVisible(chromedp.CSS("#devices .card"))); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`location.href`))
	_ = text
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, token) {
		t.Errorf("the token stayed in the address bar: %s", loc)
	}
	cookieJS, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cookieJS, token) {
		t.Errorf("the token cookie is readable from script: %q", cookieJS)
	}
	lp.get(t, "/with-token")
	waitFor(t, b, fmt.Sprintf(`[...document.querySelectorAll('#devices .card .name')].some(e => e.textContent === %q)`, "lab-vm"), 3*time.Second)
	var problems []string
	for _, p := range b.Problems() {
		if !strings.Contains(p, "status of 401") { // the first visit, without the token
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		t.Errorf("the page logged problems: %q", problems)
	}
}

// TestTunnelRowInChromium: an open tunnel shows as open, and its row
// updates in place, not as a second row, when it closes.
func TestTunnelRowInChromium(t *testing.T) {
	lp := startLivePage(t, "")
	b := testutil.NewBrowser(t, 60*time.Second)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(lp.url+"/#/flows?client=lab-vm"), chromedp.WaitReady(chromedp.CSS("#flows"))); err != nil {
		t.Fatal(err)
	}
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
	row := `[...document.querySelectorAll('#flows tbody tr')].filter(tr => tr.querySelector('td.host').textContent === ` + strconv.Quote(target) + `)`
	waitFor(t, b, row+`.length === 1 && `+row+`[0].querySelector('td.dur').textContent === 'open'`, 3*time.Second)
	c.Close()
	waitFor(t, b, row+`.length === 1 && `+row+`[0].querySelector('td.dur').textContent.endsWith(' s')`, 3*time.Second)
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page logged problems: %q", p)
	}
}

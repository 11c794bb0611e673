package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/har"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/testutil"
	"github.com/pilotwire/pilotwire/internal/web"
)

func seedFlows(t testing.TB) []flow.Flow {
	t.Helper()
	f, err := os.Open("../timeline/testdata/seed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []flow.Flow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var fl flow.Flow
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			t.Fatal(err)
		}
		fl.ID = 0
		out = append(out, fl)
	}
	return out
}

// fixture is a page over a real SQLite store holding the seed's run.
type fixture struct {
	st   *sqlite.DB
	hub  *live.Hub
	srv  *httptest.Server
	page *web.Server
}

func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pilotwire.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutFlows(t.Context(), seedFlows(t)); err != nil {
		t.Fatal(err)
	}
	hub := live.NewHub(3, 0)
	page, err := web.New(web.Options{Store: st, Hub: hub, Catalog: catalog.Default(), Token: token, Source: "seed", Version: "test",
		Now: func() time.Time { return time.Date(2019, 9, 3, 15, 20, 30, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(page)
	t.Cleanup(srv.Close)
	return &fixture{st: st, hub: hub, srv: srv, page: page}
}

func (f *fixture) get(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return resp.StatusCode
}

type flowsPage struct {
	Flows []map[string]any `json:"flows"`
	Next  *string          `json:"next"`
	Error string           `json:"error"`
}

// count pages through /api/flows with query and counts the rows.
func (f *fixture) count(t *testing.T, query string) int {
	t.Helper()
	n, cursor := 0, ""
	for range 100 {
		var p flowsPage
		q := query
		if cursor != "" {
			q += "&before=" + cursor
		}
		if code := f.get(t, "/api/flows?"+q, &p); code != 200 {
			t.Fatalf("/api/flows?%s: %d %s", q, code, p.Error)
		}
		n += len(p.Flows)
		if p.Next == nil {
			return n
		}
		cursor = *p.Next
	}
	t.Fatalf("/api/flows?%s: more than 100 pages", query)
	return n
}

func TestFlowsAPI(t *testing.T) {
	f := newFixture(t, "")
	seed := seedFlows(t)
	cat := catalog.Default()
	// The oracle: the seed's flows counted with the catalog's Lookup,
	// flow.Judge and plain string search, not with the store's filters.
	where := func(keep func(fl *flow.Flow, svc catalog.Service, known bool) bool) int {
		n := 0
		for i := range seed {
			m, ok := cat.Lookup(seed[i].Host)
			if keep(&seed[i], m.Service, ok) {
				n++
			}
		}
		return n
	}
	problem := func(fl *flow.Flow) bool { out, _ := flow.Judge(fl); return out.Problem() }
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"limit=7", len(seed)}, // every flow, seven a page
		{"limit=500", len(seed)},
		{"client=autopilot-vm&limit=50", len(seed)},
		{"client=10.9.9.9", 0},
		{"problems=1", where(func(fl *flow.Flow, _ catalog.Service, _ bool) bool { return problem(fl) })},
		{"q=ZTD.DDS&limit=1", where(func(fl *flow.Flow, _ catalog.Service, _ bool) bool {
			return strings.Contains(fl.Host, "ztd.dds") || strings.Contains(strings.ToLower(fl.URL), "ztd.dds")
		})},
		{"service=autopilot", where(func(_ *flow.Flow, s catalog.Service, ok bool) bool { return ok && s.ID == "autopilot" })},
		{"service=intune-checkin&limit=5", where(func(_ *flow.Flow, s catalog.Service, ok bool) bool { return ok && s.ID == "intune-checkin" })},
		{"noise=0&limit=20", where(func(_ *flow.Flow, s catalog.Service, ok bool) bool { return !ok || !s.Noise })},
		{"service=unknown", where(func(_ *flow.Flow, _ catalog.Service, ok bool) bool { return !ok })},
		{"service=office&problems=1", 0},
	} {
		if got := f.count(t, tc.query); got != tc.want {
			t.Errorf("/api/flows?%s: %d rows, want %d", tc.query, got, tc.want)
		}
	}
	// The seed holds two problems and one host no catalog knows; make
	// sure the oracle is not counting nothing.
	if where(func(fl *flow.Flow, _ catalog.Service, _ bool) bool { return problem(fl) }) != 2 ||
		where(func(_ *flow.Flow, _ catalog.Service, ok bool) bool { return !ok }) != 1 {
		t.Error("the seed's problems or unknown hosts changed; recount this test's expectations")
	}
	// A page's rows carry what the catalog and Judge say.
	var p flowsPage
	f.get(t, "/api/flows?problems=1", &p)
	for _, r := range p.Flows {
		if r["outcome"] != "refused" && r["outcome"] != "failed" || r["service"] == "" || r["color"] == "" {
			t.Errorf("problem row %v", r)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	f := newFixture(t, "")
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/api/flows?limit=0", 400, `limit "0": want 1 to 500`},
		{"/api/flows?limit=501", 400, "want 1 to 500"},
		{"/api/flows?limit=abc", 400, `limit "abc"`},
		{"/api/flows?problems=yes", 400, `problems "yes"`},
		{"/api/flows?noise=2", 400, `noise "2"`},
		{"/api/flows?service=nope", 400, `service "nope": no such service`},
		{"/api/flows?phase=nope", 400, `phase "nope"`},
		{"/api/flows?before=%25%25", 400, "not a cursor"},
		{"/api/flows?before=AAAA", 400, "not a cursor"},
		{"/api/flows?after_id=-1", 400, "after_id"},
		{"/api/flows?before=x&after_id=1", 400, "give one"},
		{"/api/flows?colour=red", 400, `unknown parameter "colour"`},
		{"/api/flows?q=" + strings.Repeat("a", 300), 400, "longer than 256"},
		{"/api/flows/abc", 400, `flow "abc"`},
		{"/api/flows/999999", 404, "no flow 999999"},
		{"/api/sessions/0/report", 400, "want a session number"},
		{"/api/sessions/9/report", 404, "no session 9"},
		{"/api/sessions/1/report?format=pdf", 400, `format "pdf"`},
		{"/api/nothing", 404, "no such API endpoint"},
	} {
		var e struct{ Error string }
		code := f.get(t, tc.path, &e)
		if code != tc.code || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.path, code, e.Error, tc.code, tc.msg)
		}
	}
}

func TestSessionsAndReport(t *testing.T) {
	f := newFixture(t, "")
	var devs struct {
		Devices []struct {
			Label, State, Phase string
			Session             int
			Flows               int64
		}
	}
	f.get(t, "/api/devices", &devs)
	if len(devs.Devices) != 1 || devs.Devices[0].Label != "autopilot-vm" || devs.Devices[0].Flows != 145 ||
		devs.Devices[0].State != "active" || devs.Devices[0].Phase != "desktop" {
		t.Errorf("devices: %+v", devs.Devices)
	}
	var tl struct {
		Milestones []struct {
			ID      string
			FlowIDs []int64 `json:"flow_ids"`
		}
	}
	if code := f.get(t, "/api/sessions/1/report?format=json", &tl); code != 200 || len(tl.Milestones) < 20 {
		t.Fatalf("report: %d, %d milestones", code, len(tl.Milestones))
	}
	// A flow behind a milestone names it.
	id := tl.Milestones[3].FlowIDs[0]
	var detail struct {
		Flow       map[string]any
		Catalog    map[string]any
		Session    int
		Milestones []struct{ ID string }
	}
	f.get(t, fmt.Sprintf("/api/flows/%d", id), &detail)
	found := false
	for _, m := range detail.Milestones {
		found = found || m.ID == tl.Milestones[3].ID
	}
	if !found || detail.Session != 1 || detail.Catalog == nil {
		t.Errorf("flow %d: session %d, catalog %v, milestones %v; want milestone %s", id, detail.Session, detail.Catalog, detail.Milestones, tl.Milestones[3].ID)
	}
	resp, err := http.Get(f.srv.URL + "/api/sessions/1/report?format=html&download=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="pilotwire-session-1.html"` || !strings.Contains(string(body), "<svg") ||
		strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src") {
		t.Errorf("HTML report: %q, CSP %q", cd, resp.Header.Get("Content-Security-Policy"))
	}
	var hosts struct {
		Catalog []map[string]any
		Unknown []struct {
			Host  string
			Flows int
		}
	}
	f.get(t, "/api/hosts?q=oem", &hosts)
	if len(hosts.Unknown) != 1 || hosts.Unknown[0].Host != "oem-agent.contoso-devices.example" {
		t.Errorf("unknown hosts: %+v", hosts.Unknown)
	}
}

func TestTokenGate(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	f := newFixture(t, token)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct {
		path string
		hdr  map[string]string
		code int
	}{
		{"/", nil, 401},
		{"/api/devices", nil, 401},
		{"/static/app.js", nil, 401},
		{"/api/devices", map[string]string{"Authorization": "Bearer wrong"}, 401},
		{"/api/devices", map[string]string{"Cookie": "pilotwire_token=wrong"}, 401},
		{"/healthz", nil, 200},
		{"/api/devices", map[string]string{"Authorization": "Bearer " + token}, 200},
		{"/api/devices", map[string]string{"Cookie": "pilotwire_token=" + token}, 200},
		{"/?token=wrong", nil, 401},
	} {
		if resp := get(tc.path, tc.hdr); resp.StatusCode != tc.code {
			t.Errorf("%s %v: %d, want %d", tc.path, tc.hdr, resp.StatusCode, tc.code)
		}
	}
	resp := get("/?token="+token+"&x=1", nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/?x=1" {
		t.Errorf("?token=: %d to %q, want 303 to /?x=1", resp.StatusCode, resp.Header.Get("Location"))
	}
	c := resp.Cookies()
	if len(c) != 1 || c[0].Name != web.TokenCookie || c[0].Value != token || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie: %+v", c)
	}
	// curl sees the same gate.
	curl := testutil.LookPath(t, "curl")
	out, _ := exec.Command(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", f.srv.URL+"/api/devices").Output()
	out2, _ := exec.Command(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer "+token, f.srv.URL+"/api/devices").Output()
	if string(out) != "401" || string(out2) != "200" {
		t.Errorf("curl: %s without the token, %s with it; want 401 and 200", out, out2)
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, "")
	resp, err := http.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: CSP %q, nosniff %q", csp, resp.Header.Get("X-Content-Type-Options"))
	}
}

// TestEvents: flows published to the hub reach an SSE reader as rows; a
// viewer past the limit gets 429.
func TestEvents(t *testing.T) {
	f := newFixture(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s", resp.Header.Get("Content-Type"))
	}
	// Two more viewers fill the hub of three; the fourth is refused.
	var extra []*http.Response
	for range 2 {
		r2, err := http.DefaultClient.Do(req.Clone(ctx))
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, r2)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.hub.Viewers() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var e struct{ Error string }
	if code := f.get(t, "/api/events", &e); code != 429 || !strings.Contains(e.Error, "too many viewers") {
		t.Errorf("fourth viewer: %d %q", code, e.Error)
	}
	for _, r := range extra {
		r.Body.Close()
	}
	f.hub.Publish([]flow.Flow{{ID: 9999, Key: "x", Start: time.Now(), Host: "ztd.dds.microsoft.com", Kind: flow.KindConnect, Client: "10.0.0.5"}})
	sc := bufio.NewScanner(resp.Body)
	var event string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok && event == "flows" {
			var p flowsPage
			if err := json.Unmarshal([]byte(v), &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Flows) != 1 || p.Flows[0]["service"] != "autopilot" || p.Flows[0]["id"] != float64(9999) {
				t.Errorf("flows event: %v", p.Flows)
			}
			return
		}
	}
	t.Fatalf("no flows event: %v", sc.Err())
}

// TestHARDownload: the page's HAR download re-imports to the session's
// flows.
func TestHARDownload(t *testing.T) {
	f := newFixture(t, "")
	resp, err := http.Get(f.srv.URL + "/api/sessions/1/har")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="pilotwire-session-1.har"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	var got []flow.Flow
	if err := har.Read(t.Context(), resp.Body, func(fl flow.Flow) error { got = append(got, fl); return nil },
		func(where string, err error) { t.Errorf("skipped %s: %v", where, err) }); err != nil {
		t.Fatal(err)
	}
	seed := seedFlows(t)
	if len(got) != len(seed) {
		t.Fatalf("%d flows in the HAR, want %d", len(got), len(seed))
	}
	for i := range seed {
		if got[i].Host != seed[i].Host || got[i].Kind != seed[i].Kind || got[i].BytesDown != seed[i].BytesDown || !got[i].Start.Equal(seed[i].Start) {
			t.Errorf("flow %d: %s %s %d back as %s %s %d", i, seed[i].Kind, seed[i].Host, seed[i].BytesDown, got[i].Kind, got[i].Host, got[i].BytesDown)
		}
	}
}

func TestDiffAPI(t *testing.T) {
	f := newFixture(t, "")
	var d struct {
		A, B struct {
			Session struct{ Number int }
		}
		Milestones []struct{ In string }
	}
	if code := f.get(t, "/api/diff?a=1&b=1", &d); code != 200 || d.A.Session.Number != 1 || len(d.Milestones) == 0 {
		t.Fatalf("diff of session 1 with itself: %d %+v", code, d)
	}
	for _, m := range d.Milestones {
		if m.In != "both" {
			t.Errorf("a session compared with itself has a milestone in %q only", m.In)
		}
	}
	resp, err := http.Get(f.srv.URL + "/api/diff?a=1&b=1&format=html")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `id="swimlane-a"`) || !strings.Contains(string(body), `id="swimlane-b"`) {
		t.Errorf("the HTML comparison lacks its two charts")
	}
	for _, tc := range []struct{ q, msg string }{{"a=1", `b "": want a session number`}, {"a=1&b=9", "no session 9"}, {"a=1&b=1&format=pdf", `format "pdf"`}} {
		var e struct{ Error string }
		if code := f.get(t, "/api/diff?"+tc.q, &e); code < 400 || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("/api/diff?%s: %d %q, want an error saying %q", tc.q, code, e.Error, tc.msg)
		}
	}
}

// TestAPIDoc keeps docs/api.md true: every endpoint it names answers, and
// the /api/flows parameters it lists are the ones the server takes.
func TestAPIDoc(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "")
	heading := regexp.MustCompile("(?m)^## `GET (/api/[^` ?]*)")
	paths := heading.FindAllStringSubmatch(string(doc), -1)
	if len(paths) < 9 {
		t.Fatalf("docs/api.md names %d endpoints", len(paths))
	}
	for _, m := range paths {
		p := strings.NewReplacer("{n}", "1", "{id}", "1").Replace(m[1])
		switch p {
		case "/api/events":
			continue // a stream; TestEvents reads it
		case "/api/diff":
			p += "?a=1&b=1"
		}
		if code := f.get(t, p, nil); code != 200 {
			t.Errorf("docs/api.md names %s; it answers %d", m[1], code)
		}
	}
	// The parameter table of /api/flows against what the server accepts.
	section := string(doc)[strings.Index(string(doc), "## `GET /api/flows`"):]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)(=[^`]*)?` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(documented)
	accepted := []string{"after_id", "before", "client", "limit", "noise", "phase", "problems", "q", "service", "session"}
	if !slices.Equal(documented, accepted) {
		t.Errorf("docs/api.md lists /api/flows parameters %v; the server takes %v", documented, accepted)
	}
	for _, p := range accepted {
		var e struct{ Error string }
		if code := f.get(t, "/api/flows?"+p+"=x-unknown-x", &e); code == 400 && strings.Contains(e.Error, "unknown parameter") {
			t.Errorf("parameter %s is documented but refused as unknown", p)
		}
	}
}

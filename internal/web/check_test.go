package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/check"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/sim"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/testutil"
	"github.com/pilotwire/pilotwire/internal/timeline"
	"github.com/pilotwire/pilotwire/internal/web"
)

// checkPage is a page over the seed's run whose network check is fn.
func checkPage(t *testing.T, fn func(context.Context, session.Source, timeline.Session) ([]byte, error), set ...func(*web.Options)) *httptest.Server {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pilotwire.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutFlows(t.Context(), seedFlows(t)); err != nil {
		t.Fatal(err)
	}
	o := web.Options{Store: st, Catalog: catalog.Default(), Source: "seed", Version: "test", Check: fn}
	for _, f := range set {
		f(&o)
	}
	page, err := web.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(page)
	t.Cleanup(srv.Close)
	return srv
}

func postCheck(t *testing.T, srv *httptest.Server, n string, header bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/api/sessions/"+n+"/check", nil)
	if header {
		req.Header.Set(web.CheckHeader, "1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCheckAPI(t *testing.T) {
	// Off: the route says so.
	srv := checkPage(t, nil)
	if code, body := postCheck(t, srv, "1", true); code != 404 || !strings.Contains(body, "network checks are off") {
		t.Errorf("off: %d %s", code, body)
	}

	release := make(chan struct{})
	started := make(chan timeline.Session, 1)
	srv = checkPage(t, func(ctx context.Context, src session.Source, s timeline.Session) ([]byte, error) {
		started <- s
		<-release
		return []byte(`{"ready":true,"headline":"READY"}`), nil
	})
	// Without the page's header (a form or another site's page): refused.
	if code, body := postCheck(t, srv, "1", false); code != 403 || !strings.Contains(body, web.CheckHeader) {
		t.Errorf("no header: %d %s", code, body)
	}
	if code, _ := postCheck(t, srv, "9", true); code != 404 {
		t.Errorf("no such session: %d", code)
	}
	if code, _ := postCheck(t, srv, "x", true); code != 400 {
		t.Errorf("bad session: %d", code)
	}
	// GET is not a check (nothing is probed by following a link).
	var e struct{ Error string }
	if resp, err := http.Get(srv.URL + "/api/sessions/1/check"); err != nil || resp.StatusCode != 404 ||
		json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error != "no such API endpoint: GET /api/sessions/1/check (see docs/api.md)" {
		t.Errorf("GET: %v %q", err, e.Error)
	}
	// One at a time.
	done := make(chan string)
	go func() {
		code, body := postCheck(t, srv, "1", true)
		done <- strings.TrimSpace(body) + " " + http.StatusText(code)
	}()
	s := <-started
	if s.Number != 1 || s.Client != "10.0.0.23" {
		t.Errorf("checked session %+v", s)
	}
	if code, body := postCheck(t, srv, "1", true); code != 409 || !strings.Contains(body, "a check is running already") {
		t.Errorf("second check at once: %d %s", code, body)
	}
	close(release)
	if got := <-done; got != `{"ready":true,"headline":"READY"} OK` {
		t.Errorf("first check: %s", got)
	}
}

// The page's "Check this network" against the stand-in internet, which
// answers as ztd.dds.microsoft.com only: that host passes, the others
// of the seed's run do not resolve; the verdicts show beside each host.
func TestCheckInChromium(t *testing.T) {
	in, err := sim.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	if _, err := in.AddHTTPS("ztd.dds.microsoft.com", 443, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})); err != nil {
		t.Fatal(err)
	}
	cat := catalog.Default()
	srv := checkPage(t, func(ctx context.Context, src session.Source, s timeline.Session) ([]byte, error) {
		hosts := check.NewSessionHosts(cat)
		if err := session.Flows(ctx, src, s, 0, func(f *flow.Flow) { hosts.Add(f) }); err != nil {
			return nil, err
		}
		sel := check.Selection{CatalogOff: true}
		sel.Session, sel.Region = hosts.Targets()
		targets, err := check.Targets(cat, sel)
		if err != nil {
			return nil, err
		}
		o := check.Options{Resolve: in.Resolve, Dial: in.Dial, RootCAs: in.CertPool(), StepTimeout: 2 * time.Second}
		var buf bytes.Buffer
		err = check.Render(&buf, "json", check.Summarise(check.Run(ctx, targets, o), o))
		return buf.Bytes(), err
	})
	b := testutil.NewBrowser(t, time.Minute)
	lp := &livePage{url: srv.URL}
	open(t, b, lp, "#/session/1")
	waitFor(t, b, `!document.getElementById('session-tables').hidden`, 10*time.Second)
	click(t, b, "#s-check")
	waitFor(t, b, `document.querySelectorAll('#check-body tr').length > 10`, 30*time.Second)
	row := func(host string) string {
		return eval[string](t, b, `[...document.querySelectorAll('#check-body tr')].filter(tr => tr.dataset.host === `+jsString(host)+`).map(tr => tr.innerText).join('|')`)
	}
	if got := row("ztd.dds.microsoft.com"); !strings.Contains(got, "PASS") {
		t.Errorf("ztd.dds.microsoft.com: %q, want PASS", got)
	}
	if got := row("login.live.com"); !strings.Contains(got, "FAIL") || !strings.Contains(got, "does not resolve") {
		t.Errorf("login.live.com: %q, want FAIL, does not resolve", got)
	}
	if got := eval[string](t, b, `document.getElementById('check-headline').textContent`); !strings.HasPrefix(got, "NOT READY: ") {
		t.Errorf("headline %q", got)
	}
	shot(t, b, "check")
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestCheckTimeout: a check that outlasts its time is stopped and
// answered 504 with what to do instead, not as a server error.
func TestCheckTimeout(t *testing.T) {
	srv := checkPage(t, func(ctx context.Context, src session.Source, s timeline.Session) ([]byte, error) {
		<-ctx.Done() // every host waits for an answer that never comes
		return nil, ctx.Err()
	}, func(o *web.Options) { o.CheckTimeout = 200 * time.Millisecond })
	code, body := postCheck(t, srv, "1", true)
	var e struct{ Error string }
	json.Unmarshal([]byte(body), &e)
	const want = "the check of session 1 did not finish within 200ms (hosts that do not answer wait out each step's timeout); pilotwire check --from-session 1 shows it host by host"
	if code != 504 || e.Error != want {
		t.Errorf("a check past its time: %d %q, want 504 %q", code, e.Error, want)
	}
}

package metrics

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/store/mem"
	"github.com/pilotwire/pilotwire/internal/testutil"
	"github.com/pilotwire/pilotwire/internal/timeline"
	"github.com/pilotwire/pilotwire/internal/timeline/synth"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// lines returns the sample lines of the metrics named, in order.
func lines(text string, names ...string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, n := range names {
			if strings.HasPrefix(l, n+" ") || strings.HasPrefix(l, n+"{") {
				out = append(out, l)
			}
		}
	}
	return out
}

func TestObserveAndSources(t *testing.T) {
	m := New(Sources{
		Proxy: func() (int64, int64, int64) { return 3, 2, 41 },
		Recorder: func() (flow.RecorderStats, flow.RecorderHealth) {
			return flow.RecorderStats{Written: 40, Errors: 1}, flow.RecorderHealth{Recording: true, Waiting: 5, Spool: flow.SpoolHeld{Flows: 12, Bytes: 3400}}
		},
		Intercept: func() (int64, int) { return 7, 1 },
	})
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	open := flow.Flow{Key: "t1", Start: start, Source: flow.SourceProxy, Kind: flow.KindConnect, BytesUp: 100}
	m.Observe(open) // open: not counted
	done := open
	done.End, done.BytesUp, done.BytesDown, done.Decision = start.Add(time.Second), 1000, 5000, flow.DecisionAllowed
	m.Observe(done)
	m.Observe(flow.Flow{Key: "d1", Start: start, End: start, Source: flow.SourceProxy, Kind: flow.KindHTTP, Decision: flow.DecisionDenied})
	m.Observe(flow.Flow{Key: "l1", Start: start, End: start, Source: flow.SourceProxy, Kind: flow.KindLost, Lost: 3})
	text := scrape(t, m)
	want := []string{
		`pilotwire_flows_total{decision="allowed",source="proxy"} 1`,
		`pilotwire_flows_total{decision="denied",source="proxy"} 1`,
		`pilotwire_flow_bytes_total{direction="down"} 5000`,
		`pilotwire_flow_bytes_total{direction="up"} 1000`,
		`pilotwire_open_connections 3`,
		`pilotwire_open_tunnels 2`,
		`pilotwire_requests_total 41`,
		`pilotwire_store_queue_flows 5`,
		`pilotwire_store_recording 1`,
		`pilotwire_store_writes_total 40`,
		`pilotwire_store_write_errors_total 1`,
		`pilotwire_flows_lost_total 0`,
		`pilotwire_intercept_certificates_minted_total 7`,
		`pilotwire_intercept_learned_hosts 1`,
		`pilotwire_spool_flows 12`,
		`pilotwire_spool_bytes 3400`,
		`pilotwire_spool_oldest_age_seconds 0`,
	}
	got := lines(text, "pilotwire_flows_total", "pilotwire_flow_bytes_total", "pilotwire_open_connections", "pilotwire_open_tunnels",
		"pilotwire_requests_total", "pilotwire_store_queue_flows", "pilotwire_store_recording", "pilotwire_store_writes_total",
		"pilotwire_store_write_errors_total", "pilotwire_flows_lost_total", "pilotwire_intercept_certificates_minted_total",
		"pilotwire_intercept_learned_hosts", "pilotwire_spool_flows", "pilotwire_spool_bytes", "pilotwire_spool_oldest_age_seconds")
	slices.Sort(want) // the registry writes metrics by name
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("samples:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	promtoolCheck(t, text)

	// serve: no proxy, no recorder: those metrics are left out.
	text = scrape(t, New(Sources{}))
	if got := lines(text, "pilotwire_open_tunnels", "pilotwire_flows_lost_total"); len(got) != 0 {
		t.Errorf("metrics without their source: %q", got)
	}
}

// promtoolCheck runs Prometheus' own linter over a scrape.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	promtool := testutil.LookPath(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}

// Finished sessions' phases are observed once each; a session that may
// still grow is not.
func TestObservePhases(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	start := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	a := synth.Flows(3000, start, 40*time.Minute)
	if err := st.PutFlows(ctx, a); err != nil {
		t.Fatal(err)
	}
	src := session.FromStore(st, "test")
	cat := catalog.Default()
	tl, err := session.Timeline(ctx, src, timeline.Session{Number: 1, Client: a[0].Client, Start: start, End: a[len(a)-1].End}, cat, timeline.Options{})
	if err != nil || len(tl.Phases) < 3 {
		t.Fatalf("the synthetic session has %d phases (%v)", len(tl.Phases), err)
	}
	gap := timeline.DefaultGap
	m := New(Sources{})
	end := start.Add(40 * time.Minute)

	// Still within the gap: it may grow.
	if n, err := m.ObservePhases(ctx, src, cat, gap, end.Add(gap/2)); n != 0 || err != nil {
		t.Fatalf("growing session observed: %d, %v", n, err)
	}
	later := end.Add(gap + time.Minute)
	if n, err := m.ObservePhases(ctx, src, cat, gap, later); n != 1 || err != nil {
		t.Fatalf("finished session: observed %d, %v", n, err)
	}
	if n, _ := m.ObservePhases(ctx, src, cat, gap, later); n != 0 {
		t.Fatalf("observed again: %d", n)
	}
	text := scrape(t, m)
	first := tl.Phases[0]
	want := `pilotwire_phase_duration_seconds_count{phase="` + first.ID + `"} 1`
	if !strings.Contains(text, want) {
		t.Errorf("no %q in:\n%s", want, strings.Join(lines(text, "pilotwire_phase_duration_seconds_count"), "\n"))
	}
	if got := len(lines(text, "pilotwire_phase_duration_seconds_count")); got != len(tl.Phases) {
		t.Errorf("%d phases counted, want %d", got, len(tl.Phases))
	}

	// A second device's run, finished later, is observed in its turn.
	b := synth.Flows(500, end.Add(2*time.Hour), 10*time.Minute)
	for i := range b {
		b[i].Key, b[i].Client = "b-"+b[i].Key, "10.0.0.99"
	}
	if err := st.PutFlows(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n, err := m.ObservePhases(ctx, src, cat, gap, end.Add(4*time.Hour)); n != 1 || err != nil {
		t.Fatalf("second session: observed %d, %v", n, err)
	}
	promtoolCheck(t, scrape(t, m))
}

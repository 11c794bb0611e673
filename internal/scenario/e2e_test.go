package scenario_test

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/allowlist"
	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/pattern"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/scenario"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/sim"
	"github.com/pilotwire/pilotwire/internal/store/mem"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// replay plays sc through a real proxy to the stand-in internet and
// returns the device's records and what the proxy stored.
func replay(t *testing.T, sc *scenario.Scenario, speed float64) ([]scenario.Record, []flow.Flow, *mem.Store) {
	t.Helper()
	return replayWith(t, sc, speed, nil)
}

func replayWith(t *testing.T, sc *scenario.Scenario, speed float64, limits []scenario.Limit) ([]scenario.Record, []flow.Flow, *mem.Store) {
	t.Helper()
	return replayThrough(t, sc, speed, limits, nil)
}

// replayThrough is replayWith with the proxy adjusted by configure (nil:
// as it comes).
func replayThrough(t *testing.T, sc *scenario.Scenario, speed float64, limits []scenario.Limit, configure func(*proxy.Proxy)) ([]scenario.Record, []flow.Flow, *mem.Store) {
	t.Helper()
	in, err := sim.New()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := scenario.Stage(in, sc); err != nil {
		t.Fatal(err)
	}
	st := mem.New()
	rec := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: 50 * time.Millisecond})
	device := netip.MustParseAddr("127.0.0.23")
	p := &proxy.Proxy{Resolve: in.Resolve, Dial: in.Dial, Record: rec.Record,
		Devices: map[netip.Addr]string{device: sc.Device}}
	if configure != nil {
		configure(p)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	r := &scenario.Runner{Proxy: ln.Addr().String(), RootCAs: in.CertPool(), Speed: speed, BytesScale: 1.0 / 256, LocalAddr: device, Limits: limits}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	recs, err := r.Run(ctx, sc)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	p.Shutdown(sctx)
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	var flows []flow.Flow
	if err := st.Flows(context.Background(), flow.Filter{}, func(f flow.Flow) error {
		if f.Kind != flow.KindPAC {
			flows = append(flows, f)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs, flows, st
}

// TestReplayEmbedded plays every built-in scenario through the real proxy
// at 120× (in parallel: about 25 s) and checks what pilotwire captured
// against what the device did, flow for flow, and the captured timeline
// against the scenario's own.
func TestReplayEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("plays every built-in scenario at 120×: about 25 s")
	}
	for _, name := range scenario.Embedded() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sc, err := scenario.Load(name, os.ReadFile)
			if err != nil {
				t.Fatal(err)
			}
			got := checkReplay(t, sc, 120)
			fired := map[string]bool{}
			for _, m := range got.Milestones {
				fired[m.ID] = true
			}
			failedEnrollment := false
			for _, a := range got.Attention {
				failedEnrollment = failedEnrollment || a.Kind == timeline.AttentionFailed && a.Host.Host == "enrollment.manage.microsoft.com"
			}
			// What makes each scenario what it is shows in its report.
			switch name {
			case "self-deploying", "pre-provisioning":
				if !fired["tpm-attestation"] {
					t.Errorf("%s: no TPM attestation milestone", name)
				}
			case "failing-enrollment":
				if fired["intune-enrollment"] || !failedEnrollment {
					t.Errorf("%s: enrollment fired %v, failed enrollment under attention %v", name, fired["intune-enrollment"], failedEnrollment)
				}
			case "user-driven":
				if fired["tpm-attestation"] || !fired["intune-enrollment"] {
					t.Errorf("%s: TPM attestation %v, enrollment %v", name, fired["tpm-attestation"], fired["intune-enrollment"])
				}
			}
		})
	}
}

func checkReplay(t *testing.T, sc *scenario.Scenario, speed float64) *timeline.Timeline {
	recs, flows, st := replay(t, sc, speed)

	// Every step went as the scenario expected.
	for i, rec := range recs {
		if !rec.Expected(&sc.Steps[i]) {
			t.Errorf("step %d (line %d, %s %s): outcome %q (%s), the scenario expects %q", i+1, sc.Steps[i].Line,
				rec.Method, rec.Host, rec.Outcome, rec.Err, sc.Steps[i].Expect)
		}
	}
	// One flow per step, to the same host with the same method.
	if len(flows) != len(recs) {
		t.Fatalf("%d steps, %d flows stored", len(recs), len(flows))
	}
	want := map[string]int{}
	for _, rec := range recs {
		want[rec.Method+" "+rec.Host]++
	}
	for _, f := range flows {
		want[f.Method+" "+f.Host]--
	}
	for k, n := range want {
		if n != 0 {
			t.Errorf("%s: %d more steps than flows", k, n)
		}
	}

	// The captured timeline has the scenario's milestones, at the
	// scenario's offsets divided by the speed, within a second.
	src := session.FromStore(st, "replay")
	s, err := session.Find(t.Context(), src, timeline.DefaultGap, 0, session.Who{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := session.Timeline(t.Context(), src, s, catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	expected := expectedTimeline(t, sc, recs, speed)
	at := map[string]time.Duration{}
	for _, m := range got.Milestones {
		if _, ok := at[m.ID]; !ok {
			at[m.ID] = m.Offset
		}
	}
	found := 0
	for _, m := range expected.Milestones {
		if m.Likely {
			continue // inferred from silences, which do not scale with speed
		}
		off, ok := at[m.ID]
		switch {
		case !ok:
			t.Errorf("milestone %s (%s) at %s in the scenario is not in the captured timeline", m.ID, m.Title, m.Offset)
		case off-m.Offset > time.Second || m.Offset-off > time.Second:
			t.Errorf("milestone %s at %s, the scenario says %s", m.ID, off, m.Offset)
		default:
			found++
		}
	}
	if found < 5 {
		t.Errorf("only %d milestones compared; the seed's runs have more", found)
	}

	// The captured session made into a scenario again has the captured
	// timeline's milestones at the same offsets: a customer's run becomes
	// a lab case that plays the same.
	again, skipped := scenario.FromFlows("again", sc.Device, flows)
	if skipped != 0 || len(again.Steps) != len(sc.Steps) {
		t.Fatalf("from-session: %d steps, %d skipped; want %d steps", len(again.Steps), skipped, len(sc.Steps))
	}
	replayed := expectedTimeline(t, again, nil, 1)
	at2 := map[string]time.Duration{}
	for _, m := range replayed.Milestones {
		if _, ok := at2[m.ID]; !ok {
			at2[m.ID] = m.Offset
		}
	}
	for _, m := range got.Milestones {
		if m.Likely {
			continue
		}
		if off, ok := at2[m.ID]; !ok || off-m.Offset > time.Second || m.Offset-off > time.Second {
			t.Errorf("from-session: milestone %s at %s in the capture, %s (found %v) in its scenario", m.ID, m.Offset, off, ok)
		}
	}
	t.Logf("%d steps, %d flows, %d milestones at their offsets", len(recs), len(flows), found)
	return got
}

// expectedTimeline is the scenario's own timeline at speed: its steps as
// the flows they should make, at their offsets divided by the speed.
func expectedTimeline(t *testing.T, sc *scenario.Scenario, recs []scenario.Record, speed float64) *timeline.Timeline {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var flows []flow.Flow
	for i, st := range sc.Steps {
		f := flow.Flow{ID: int64(i + 1), Start: t0.Add(time.Duration(float64(st.At) / speed)), Client: "10.0.0.23", Device: sc.Device,
			Host: st.Host, Port: st.Port, Method: st.Method, BytesUp: st.Up + 1, BytesDown: st.Down + 4096, Status: st.Status()}
		f.End = f.Start.Add(time.Duration(float64(st.Duration)/speed) + time.Millisecond)
		if st.Method == "CONNECT" {
			f.Kind, f.Status = flow.KindConnect, 200
		} else {
			f.Kind, f.Scheme, f.URL = flow.KindHTTP, "http", "http://"+st.Host+st.Path
		}
		switch st.Expect {
		case scenario.ExpectRefused:
			f.Decision, f.Status, f.BytesDown = flow.DecisionDenied, 403, 0
		case scenario.ExpectFail:
			f.Status, f.BytesDown, f.Error = 502, 0, "no such host"
		}
		flows = append(flows, f)
	}
	_ = recs
	tl, err := timeline.Build(flows, catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sc.Name, "fail") && !tl.Provisioning {
		t.Fatalf("the scenario %s does not look like provisioning", sc.Name)
	}
	return tl
}

// TestSlowService: a bandwidth limit on a service makes its content
// slower in the capture, and the report says so.
func TestSlowService(t *testing.T) {
	if testing.Short() {
		t.Skip("about 4 s")
	}
	sc, err := scenario.Load("user-driven", os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	// The first three minutes: profile, enrollment and the Office download.
	var steps []scenario.Step
	for _, st := range sc.Steps {
		if st.At < 3*time.Minute+30*time.Second {
			steps = append(steps, st)
		}
	}
	sc.Steps = steps
	var office []pattern.Pattern
	for _, e := range catalog.Default().Entries() {
		if e.Service == "office" {
			office = append(office, e.HostPattern())
		}
	}
	// The time the device spent on Office content: what a limit stretches.
	busy := func(limits []scenario.Limit) time.Duration {
		_, flows, _ := replayWith(t, sc, 60, limits)
		var d time.Duration
		n := 0
		for _, f := range flows {
			if slices.ContainsFunc(office, func(p pattern.Pattern) bool { return p.Match(f.Host) }) {
				d += f.Duration()
				n++
			}
		}
		if n == 0 {
			t.Fatal("no Office flow captured")
		}
		return d
	}
	free := busy(nil)
	limited := busy([]scenario.Limit{{Hosts: office, BytesPerSecond: 2 << 20}})
	if free <= 0 || limited < 3*free {
		t.Errorf("Office content took %s with a 2 MiB/s limit, %s without: want at least 3x longer", limited, free)
	}
	t.Logf("Office content: %s free, %s limited to 2 MiB/s (at 60x)", free, limited)
}

// TestFromSessionReplays: a captured run made into a scenario
// (FromFlows, as `pilotwire scenario from-session` does) and played again
// through the proxy gives the captured run's timeline: the same
// milestones, at the same offsets within a second.
func TestFromSessionReplays(t *testing.T) {
	if testing.Short() {
		t.Skip("two replays: about 20 s")
	}
	sc, err := scenario.Load("user-driven", os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	milestones := func(st *mem.Store) map[string]time.Duration {
		src := session.FromStore(st, "replay")
		s, err := session.Find(t.Context(), src, timeline.DefaultGap, 0, session.Who{})
		if err != nil {
			t.Fatal(err)
		}
		tl, err := session.Timeline(t.Context(), src, s, catalog.Default(), timeline.Options{})
		if err != nil {
			t.Fatal(err)
		}
		at := map[string]time.Duration{}
		for _, m := range tl.Milestones {
			if _, ok := at[m.ID]; !ok && !m.Likely {
				at[m.ID] = m.Offset
			}
		}
		return at
	}
	_, flows, first := replay(t, sc, 120)
	again, _ := scenario.FromFlows("again", sc.Device, flows)
	_, _, second := replay(t, again, 1) // its offsets are the capture's, already 120x faster
	a, b := milestones(first), milestones(second)
	if len(a) < 15 {
		t.Fatalf("the first capture has %d milestones", len(a))
	}
	for id, off := range a {
		off2, ok := b[id]
		if !ok || off2-off > time.Second || off-off2 > time.Second {
			t.Errorf("milestone %s at %s in the capture, %s (present %v) when its scenario is played again", id, off, off2, ok)
		}
	}
	for id := range b {
		if _, ok := a[id]; !ok {
			t.Errorf("milestone %s appears only when the scenario is played again", id)
		}
	}
}

// A device with no proxy (Runner.Direct) plays the same steps straight to
// the stand-in internet, with the same outcomes: benchmarks compare the
// two to tell what the proxy adds.
func TestDirect(t *testing.T) {
	sc, err := scenario.Parse("direct.yaml", []byte(`name: direct
description: three steps
device: vm
steps:
  - {at: 0s, connect: "ztd.dds.microsoft.com:443", up: 1000, down: 5000, duration: 100ms}
  - {at: 0s, get: "http://www.msftconnecttest.com/connecttest.txt", down: 22, duration: 10ms}
  - {at: 1s, post: "http://ctldl.windowsupdate.com/x", up: 300, down: 400, expect: "404"}
`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := sim.New()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := scenario.Stage(in, sc); err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32 // steps run at once
	r := &scenario.Runner{RootCAs: in.CertPool(), Speed: 10,
		Direct: func(ctx context.Context, host string, port int) (net.Conn, error) {
			dials.Add(1)
			addrs, err := in.Resolve(ctx, host)
			if err != nil {
				return nil, err
			}
			return in.Dial(ctx, "tcp", netip.AddrPortFrom(addrs[0], uint16(port)).String())
		}}
	recs, err := r.Run(t.Context(), sc)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		if !rec.Expected(&sc.Steps[i]) {
			t.Errorf("step %d: %s (%s)", i+1, rec.Outcome, rec.Err)
		}
	}
	if dials.Load() != 3 || recs[0].Down != 5000 || recs[2].Status != 404 {
		t.Errorf("%d dials; records %+v", dials.Load(), recs)
	}
}

// A device that plays the seed's run through proxy --enforce with the
// catalog's own required export (Squid format, read back as proxy
// --enforce reads it) is never denied a host the catalog marks required,
// and is denied exactly the hosts no required entry covers. Without
// .manage.microsoft.com in the list, every Intune step is refused (403).
func TestEnforceRequiredExport(t *testing.T) {
	sc, err := scenario.Load("user-driven", os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog.Default()
	required, err := cat.Select(catalog.Selection{Required: []catalog.Required{catalog.RequiredYes}})
	if err != nil {
		t.Fatal(err)
	}
	var export strings.Builder
	if err := cat.Export(&export, "squid", required, catalog.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	covered := func(host string) bool {
		return slices.ContainsFunc(required, func(e catalog.Entry) bool { return e.HostPattern().Match(host) })
	}
	enforce := func(t *testing.T, list string) ([]scenario.Record, []flow.Flow) {
		t.Helper()
		allow, err := allowlist.Parse("required.acl", []byte(list))
		if err != nil {
			t.Fatal(err)
		}
		policy := allowlist.Policy{Allow: allow}
		recs, flows, _ := replayThrough(t, sc, 400, nil, func(p *proxy.Proxy) { p.Policy = policy.Decide })
		return recs, flows
	}

	t.Run("required export", func(t *testing.T) {
		recs, flows := enforce(t, export.String())
		wantDenied := map[string]bool{}
		for _, st := range sc.Steps {
			if !covered(st.Host) {
				wantDenied[st.Host] = true
			}
		}
		gotDenied := map[string]bool{}
		for _, f := range flows {
			if f.Decision != flow.DecisionDenied {
				continue
			}
			gotDenied[f.Host] = true
			if m, ok := cat.Lookup(f.Host); ok && m.Entry.Required == catalog.RequiredYes {
				t.Errorf("required host %s denied: %s", f.Host, f.Reason)
			}
		}
		if !maps.Equal(gotDenied, wantDenied) || len(wantDenied) == 0 {
			t.Errorf("denied hosts %v, want those no required entry covers: %v", slices.Sorted(maps.Keys(gotDenied)), slices.Sorted(maps.Keys(wantDenied)))
		}
		if len(flows) != len(recs) {
			t.Errorf("%d flows for %d steps", len(flows), len(recs))
		}
	})

	t.Run("without Intune", func(t *testing.T) {
		var lines []string
		for _, l := range strings.Split(export.String(), "\n") {
			if !strings.Contains(l, "manage.microsoft.com") {
				lines = append(lines, l)
			}
		}
		recs, flows := enforce(t, strings.Join(lines, "\n"))
		intune := 0
		for _, st := range sc.Steps {
			if st.Host == "manage.microsoft.com" || strings.HasSuffix(st.Host, ".manage.microsoft.com") {
				intune++
			}
		}
		refused := 0
		for i, rec := range recs {
			h := sc.Steps[i].Host
			if h == "manage.microsoft.com" || strings.HasSuffix(h, ".manage.microsoft.com") {
				if rec.Status != 403 || rec.Outcome != scenario.ExpectRefused {
					t.Errorf("step %d to %s: %d %s, want 403 refused", i+1, h, rec.Status, rec.Outcome)
				}
				refused++
			}
		}
		denied := 0
		for _, f := range flows {
			if f.Decision == flow.DecisionDenied && (f.Host == "manage.microsoft.com" || strings.HasSuffix(f.Host, ".manage.microsoft.com")) {
				denied++
			}
		}
		if intune == 0 || refused != intune || denied != intune {
			t.Errorf("%d Intune steps, %d refused, %d denied flows", intune, refused, denied)
		}
		t.Logf("%d Intune steps refused", intune)
	})
}

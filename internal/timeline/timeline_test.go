package timeline_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// TestSeedMilestones is the seed as a test: the report of the
// reconstructed run must show the seed's annotations at the seed's times.
// With T0 ten seconds before the first flow the offsets are the seed's own.
func TestSeedMilestones(t *testing.T) {
	flows := loadSeed(t)
	tl, err := timeline.Build(flows, catalog.Default(), timeline.Options{T0: flows[0].Start.Add(-10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id, at string
		hosts  []string // hosts the milestone must name
	}{
		{"first-flow", "00:10", []string{"login.live.com", "ocsp.digicert.com"}},
		{"registration-lookup", "00:10", []string{"login.live.com"}},
		{"connectivity-check", "00:11", []string{"www.msftconnecttest.com"}},
		{"profile-download", "00:12", []string{"ztd.dds.microsoft.com"}},
		{"activation", "00:18", []string{"activation-v2.sls.microsoft.com"}},
		{"oobe-update-check", "00:18", []string{"sls.update.microsoft.com"}},
		{"reboot", "00:45", []string{"www.msftconnecttest.com"}},
		{"usage-events", "01:02", []string{"v10.events.data.microsoft.com"}},
		{"delivery-optimization", "01:20", []string{"geo.prod.do.dsp.mp.microsoft.com"}},
		{"entra-signin", "01:28", []string{"login.microsoftonline.com", "aadcdn.msauth.net"}},
		{"defender", "01:56", []string{"wdcp.microsoft.com"}},
		{"intune-enrollment", "02:01", []string{"enrollment.manage.microsoft.com"}},
		{"intune-checkin", "02:10", []string{"fef.msua01.manage.microsoft.com"}},
		{"office-download", "02:56", []string{"officecdn.microsoft.com"}},
		{"ime-content", "02:58", []string{"naprodimedatapri.azureedge.net"}},
		{"wns", "03:22", []string{"client.wns.windows.com"}},
		{"onedrive", "03:51", []string{"g.live.com"}},
		{"delivery-optimization", "04:06", nil},
		{"win32-content", "04:07", []string{"swda01-mscdn.azureedge.net"}},
		{"teams", "04:45", []string{"statics.teams.microsoft.com"}},
		{"ctl-refresh", "11:39", []string{"ctldl.windowsupdate.com"}},
		{"user-signin", "16:19", []string{"login.microsoftonline.com"}},
		{"third-party", "16:19", []string{"dl.google.com"}},
		{"teams", "16:45", nil},
		{"desktop", "17:28", []string{"tile-service.weather.microsoft.com"}},
		{"last-flow", "20:13", nil},
	}
	var got []string
	for _, m := range tl.Milestones {
		got = append(got, timeline.FormatOffset(m.Offset)+" "+m.ID)
	}
	var wantS []string
	for _, w := range want {
		wantS = append(wantS, w.at+" "+w.id)
	}
	if !slices.Equal(got, wantS) {
		t.Fatalf("milestones:\n got %q\nwant %q", got, wantS)
	}
	for i, w := range want {
		m := tl.Milestones[i]
		for _, h := range w.hosts {
			if !slices.ContainsFunc(m.Hosts, func(r timeline.HostRef) bool { return r.Host == h }) {
				t.Errorf("%s %s: hosts %v, want %s among them", w.at, w.id, m.Hosts, h)
			}
		}
		if len(m.FlowIDs) == 0 || m.Flows < len(m.FlowIDs) {
			t.Errorf("%s %s: %d flows, IDs %v", w.at, w.id, m.Flows, m.FlowIDs)
		}
	}
	byID := func(id string) timeline.Milestone {
		i := slices.IndexFunc(tl.Milestones, func(m timeline.Milestone) bool { return m.ID == id })
		return tl.Milestones[i]
	}
	if r := byID("intune-checkin").Region; r != "MSUA01" {
		t.Errorf("check-in region %q, want MSUA01", r)
	}
	if !strings.Contains(byID("intune-checkin").Text, "MSUA01") {
		t.Errorf("check-in text %q does not name the region", byID("intune-checkin").Text)
	}
	if m := byID("third-party"); !strings.Contains(m.Text, "GoogleUpdateSetup.exe") {
		t.Errorf("third-party text %q does not name GoogleUpdateSetup.exe", m.Text)
	}
	if m := byID("ctl-refresh"); !strings.Contains(m.Text, "authrootstl.cab") || !m.Hosts[0].PlainHTTP {
		t.Errorf("CTL refresh %+v: want the plain-HTTP authrootstl.cab", m)
	}
	first := byID("first-flow")
	if i := slices.IndexFunc(first.Hosts, func(r timeline.HostRef) bool { return r.Host == "ocsp.digicert.com" }); i < 0 || !first.Hosts[i].PlainHTTP {
		t.Errorf("first signs of life %+v: want ocsp.digicert.com over plain HTTP", first.Hosts)
	}
	reboot := byID("reboot")
	if !reboot.Likely || !strings.Contains(reboot.Why, "21 s") || !strings.Contains(reboot.Text, "likely") && !strings.Contains(reboot.Text, "probably") {
		t.Errorf("reboot: likely=%v why=%q text=%q", reboot.Likely, reboot.Why, reboot.Text)
	}
	if d := tl.Session.Duration(); d < 19*time.Minute+30*time.Second || d > 20*time.Minute+30*time.Second {
		t.Errorf("session lasted %s, want about 20 minutes", d)
	}

	// Phases, in order, at their milestones.
	var phases []string
	for _, p := range tl.Phases {
		phases = append(phases, timeline.FormatOffset(p.StartOffset)+"-"+timeline.FormatOffset(p.EndOffset)+" "+p.ID)
	}
	wantPhases := []string{"00:10-01:28 oobe", "01:28-02:01 entra", "02:01-02:10 mdm", "02:10-16:19 device-esp",
		"16:19-17:28 user-esp", "17:28-20:14 desktop"}
	if !slices.Equal(phases, wantPhases) {
		t.Errorf("phases:\n got %q\nwant %q", phases, wantPhases)
	}
	esp := tl.Phases[3]
	if esp.Services[0].Service.ID != "office" {
		t.Errorf("device ESP dominated by %s, want office (bytes)", esp.Services[0].Service.ID)
	}

	// Needs attention: exactly the four problems the fixture plants.
	var att []string
	for _, a := range tl.Attention {
		att = append(att, a.Kind+" "+a.Host.Host+" hurts="+a.Hurts)
	}
	wantAtt := []string{
		"refused watson.telemetry.microsoft.com hurts=",
		"failed v10.vortex-win.data.microsoft.com hurts=",
		"slow-content swda02-mscdn.azureedge.net hurts=device-esp",
		"unknown-host oem-agent.contoso-devices.example hurts=",
	}
	if !slices.Equal(att, wantAtt) {
		t.Errorf("attention:\n got %q\nwant %q", att, wantAtt)
	}

	// One band per service seen, each with its flows.
	var total int64
	seen := map[string]bool{}
	for _, b := range tl.Services {
		if seen[b.Service.ID] {
			t.Errorf("service %s has two bands", b.Service.ID)
		}
		seen[b.Service.ID] = true
		total += b.Flows
	}
	if total != int64(len(flows)) {
		t.Errorf("bands hold %d flows, want %d", total, len(flows))
	}
}

func TestFormatOffset(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "00:00"},
		{999 * time.Millisecond, "00:00"},
		{10 * time.Second, "00:10"},
		{16*time.Minute + 19*time.Second + 500*time.Millisecond, "16:19"},
		{59*time.Minute + 59*time.Second, "59:59"},
		{time.Hour + 2*time.Minute + 3*time.Second, "1:02:03"},
		{-5 * time.Second, "-00:05"},
		{-500 * time.Millisecond, "-00:01"},
	} {
		if got := timeline.FormatOffset(tt.d); got != tt.want {
			t.Errorf("FormatOffset(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSplit(t *testing.T) {
	mk := func(client, session, start string, dur time.Duration) flow.Flow {
		s := at(start)
		return flow.Flow{Client: client, Session: session, Start: s, End: s.Add(dur), BytesDown: 100}
	}
	flows := []flow.Flow{
		mk("10.0.0.1", "", "2026-01-01T10:00:00Z", time.Second),
		mk("10.0.0.2", "", "2026-01-01T10:05:00Z", time.Second),
		mk("10.0.0.1", "", "2026-01-01T10:20:00Z", 15*time.Minute), // ends 10:35
		mk("10.0.0.1", "", "2026-01-01T11:04:00Z", time.Second),    // 29 min after 10:35: same run
		mk("10.0.0.1", "", "2026-01-01T11:36:00Z", time.Second),    // 32 min idle: new run
		mk("10.0.0.1", "lab-run-7", "2026-01-01T11:40:00Z", time.Second),
		mk("10.0.0.1", "lab-run-7", "2026-01-01T15:40:00Z", time.Second), // named: never split by time
		{Client: "10.0.0.2", Start: at("2026-01-01T12:00:00Z")},          // open flow
	}
	got := split(flows, 30*time.Minute)
	want := []struct {
		client, name, start, end string
		flows                    int64
	}{
		{"10.0.0.1", "", "2026-01-01T10:00:00Z", "2026-01-01T11:04:01Z", 3},
		{"10.0.0.2", "", "2026-01-01T10:05:00Z", "2026-01-01T10:05:01Z", 1},
		{"10.0.0.1", "", "2026-01-01T11:36:00Z", "2026-01-01T11:36:01Z", 1},
		{"10.0.0.1", "lab-run-7", "2026-01-01T11:40:00Z", "2026-01-01T15:40:01Z", 2},
		{"10.0.0.2", "", "2026-01-01T12:00:00Z", "2026-01-01T12:00:00Z", 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d sessions, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Number != i+1 || g.Client != w.client || g.Name != w.name || !g.Start.Equal(at(w.start)) ||
			!g.End.Equal(at(w.end)) || g.Flows != w.flows || g.Bytes != 100*w.flows-boolInt(i == 4)*100 {
			t.Errorf("session %d = %+v, want %+v", i+1, g, w)
		}
	}
	for i := range flows {
		n := 0
		for _, s := range got {
			if s.Contains(&flows[i]) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("flow %d is in %d sessions, want 1", i, n)
		}
	}
	// The default gap is 30 minutes.
	if d := split(flows, 0); len(d) != len(got) {
		t.Errorf("Split with gap 0 made %d sessions, want %d", len(d), len(got))
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// pacFlow is pilotwire's own answer to a client asking the proxy for its
// PAC file.
func pacFlow(client, start string) flow.Flow {
	s := at(start)
	return flow.Flow{Client: client, Start: s, End: s.Add(5 * time.Millisecond), Kind: flow.KindPAC, Method: "GET",
		Scheme: "http", Host: "127.0.0.1", Port: 8080, URL: "http://127.0.0.1:8080/proxy.pac", Status: 200,
		BytesUp: 300, BytesDown: 900, Source: flow.SourceProxy}
}

// TestPACIsNotADevice: the proxy's own PAC answers never start, extend or
// count in a session, and are never the newest session.
func TestPACIsNotADevice(t *testing.T) {
	dev := func(start string) flow.Flow {
		s := at(start)
		return flow.Flow{Client: "10.0.0.23", Start: s, End: s.Add(time.Second), Kind: flow.KindConnect, Host: "ztd.dds.microsoft.com",
			Port: 443, Status: 200, SNI: "ztd.dds.microsoft.com", BytesUp: 2000, BytesDown: 9000}
	}
	flows := []flow.Flow{
		pacFlow("10.0.0.23", "2026-01-01T09:59:00Z"), // before the device's run: not its start
		dev("2026-01-01T10:00:00Z"),
		pacFlow("10.0.0.23", "2026-01-01T10:00:05Z"),
		dev("2026-01-01T10:00:10Z"),
		pacFlow("10.0.0.23", "2026-01-01T10:00:40Z"), // after its last flow: no extension
		pacFlow("127.0.0.1", "2026-01-01T11:00:00Z"), // the proxy's own machine: no session
	}
	got := split(flows, 30*time.Minute)
	if len(got) != 1 {
		t.Fatalf("got %d sessions, want 1 (the device's): %+v", len(got), got)
	}
	s := got[0]
	if s.Client != "10.0.0.23" || !s.Start.Equal(at("2026-01-01T10:00:00Z")) || !s.End.Equal(at("2026-01-01T10:00:11Z")) ||
		s.Flows != 2 || s.Bytes != 22000 {
		t.Errorf("session %+v: want 10.0.0.23 from 10:00:00 to 10:00:11, 2 flows, 22000 bytes", s)
	}
	sp := timeline.NewSplitter(0)
	if sp.Add(&flows[5]); len(sp.Sessions()) != 0 {
		t.Errorf("a PAC flow alone made %d sessions, want none", len(sp.Sessions()))
	}

	tl, err := timeline.Build(flows[:5], catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tl.Session.Flows != 2 || !tl.Session.Start.Equal(s.Start) || !tl.Session.End.Equal(s.End) {
		t.Errorf("timeline session %+v, want the device's two flows only", tl.Session)
	}
	var ms []string
	for _, m := range tl.Milestones {
		ms = append(ms, timeline.FormatOffset(m.Offset)+" "+m.ID)
		for _, h := range m.Hosts {
			if h.Host == "127.0.0.1" {
				t.Errorf("milestone %s names the proxy's own address", m.ID)
			}
		}
	}
	want := []string{"00:00 first-flow", "00:00 profile-download", "00:05 proxy-config", "00:10 last-flow"}
	if !slices.Equal(ms, want) {
		t.Errorf("milestones %q, want %q", ms, want)
	}
	for _, m := range tl.Milestones {
		if m.ID == "proxy-config" && (m.Title != "Proxy auto-config fetched" || m.Flows != 1 || !slices.Equal(m.FlowIDs, []int64{3})) {
			t.Errorf("PAC milestone %+v: want one line for flow 3", m)
		}
	}
	for _, a := range tl.Attention {
		t.Errorf("attention %s %s: the PAC flow is not the device's", a.Kind, a.Host.Host)
	}
	for _, b := range tl.Services {
		if b.Flows != 2 || b.Service.ID != "autopilot" {
			t.Errorf("band %s with %d flows: want the autopilot band only", b.Service.ID, b.Flows)
		}
	}
	// The proxy's machine alone is nobody: an empty timeline.
	if tl, err := timeline.Build(flows[5:], catalog.Default(), timeline.Options{}); err != nil || len(tl.Milestones) != 0 || tl.Session.Flows != 0 {
		t.Errorf("PAC flows alone: %+v, %v; want an empty timeline", tl, err)
	}
}

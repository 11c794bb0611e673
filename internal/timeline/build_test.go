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

var base = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// tf is a one-second flow to host at second s.
func tf(s int, host string) flow.Flow {
	st := base.Add(time.Duration(s) * time.Second)
	return flow.Flow{Start: st, End: st.Add(time.Second), Client: "10.0.0.5", Kind: flow.KindConnect, Host: host, Port: 443,
		Status: 200, BytesDown: 1000}
}

func ids(tl *timeline.Timeline) []string {
	var out []string
	for _, m := range tl.Milestones {
		out = append(out, timeline.FormatOffset(m.Offset)+" "+m.ID)
	}
	return out
}

func build(t *testing.T, flows []flow.Flow, opt timeline.Options) *timeline.Timeline {
	t.Helper()
	tl, err := timeline.Build(flows, catalog.Default(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func TestReboot(t *testing.T) {
	probe := func(s int) flow.Flow {
		f := tf(s, "www.msftconnecttest.com")
		f.Kind, f.Scheme, f.Port, f.URL = flow.KindHTTP, "http", 80, "http://www.msftconnecttest.com/connecttest.txt"
		return f
	}
	for _, tt := range []struct {
		name  string
		flows []flow.Flow
		want  bool
	}{
		{"silence, probe, burst", []flow.Flow{tf(0, "login.live.com"), tf(1, "ztd.dds.microsoft.com"), probe(30),
			tf(31, "login.live.com"), tf(32, "ocsp.digicert.com")}, true},
		{"silence too short", []flow.Flow{tf(0, "login.live.com"), tf(1, "ztd.dds.microsoft.com"), probe(10),
			tf(11, "login.live.com"), tf(12, "ocsp.digicert.com")}, false},
		{"no probe after the silence", []flow.Flow{probe(0), tf(1, "ztd.dds.microsoft.com"), tf(30, "login.live.com"),
			tf(31, "login.live.com"), tf(32, "ocsp.digicert.com")}, false},
		{"probe but no burst", []flow.Flow{tf(0, "login.live.com"), tf(1, "ztd.dds.microsoft.com"), probe(30),
			tf(100, "login.live.com")}, false},
		{"probe late in the burst", []flow.Flow{tf(0, "login.live.com"), tf(30, "login.live.com"), tf(31, "ocsp.digicert.com"),
			probe(45)}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tl := build(t, tt.flows, timeline.Options{})
			got := slices.ContainsFunc(tl.Milestones, func(m timeline.Milestone) bool { return m.ID == "reboot" })
			if got != tt.want {
				t.Errorf("reboot found = %v, want %v: %q", got, tt.want, ids(tl))
			}
		})
	}
}

func TestAttentionKinds(t *testing.T) {
	sni := tf(0, "login.live.com")
	sni.SNI = "evil.example"
	auth := tf(1, "r.manage.microsoft.com")
	auth.Status = 407
	ok401 := tf(2, "login.microsoftonline.com")
	ok401.Status = 401
	ip := tf(3, "203.0.113.9")
	ip.SNI = "ztd.dds.microsoft.com" // a pcap flow: address as host, name from SNI
	open := tf(4, "no-such-host.example")
	open.End = time.Time{}
	tl := build(t, []flow.Flow{sni, auth, ok401, ip, open}, timeline.Options{})
	var got []string
	for _, a := range tl.Attention {
		got = append(got, a.Kind+" "+a.Host.Host+" "+a.Detail+" hurts="+a.Hurts)
	}
	want := []string{
		"failed r.manage.microsoft.com HTTP 407 (proxy authentication: provisioning runs as SYSTEM and cannot answer) hurts=device-esp",
		"sni-mismatch login.live.com SNI evil.example hurts=oobe",
		"unknown-host no-such-host.example  hurts=",
	}
	if !slices.Equal(got, want) {
		t.Errorf("attention:\n got %q\nwant %q", got, want)
	}
	// The address-with-SNI flow is named by its SNI.
	if !slices.ContainsFunc(tl.Milestones, func(m timeline.Milestone) bool { return m.ID == "profile-download" }) {
		t.Errorf("flow to an address with SNI ztd.dds.microsoft.com made no profile milestone: %q", ids(tl))
	}
	// An open flow counts until its start.
	if !tl.Session.End.Equal(base.Add(4 * time.Second)) {
		t.Errorf("session end %v", tl.Session.End)
	}
}

func TestBuildOptions(t *testing.T) {
	flows := []flow.Flow{tf(20, "ztd.dds.microsoft.com"), tf(10, "login.live.com")} // out of order
	tl := build(t, flows, timeline.Options{T0: base})
	if got, want := ids(tl), []string{"00:10 first-flow", "00:10 registration-lookup", "00:20 profile-download", "00:20 last-flow"}; !slices.Equal(got, want) {
		t.Errorf("milestones %q, want %q", got, want)
	}
	if flows[0].Host != "ztd.dds.microsoft.com" {
		t.Error("Build reordered the caller's slice")
	}
	// Without IDs, flows are named by their position (1-based, in start
	// order).
	if got := tl.Milestones[2].FlowIDs; !slices.Equal(got, []int64{2}) {
		t.Errorf("profile flow IDs %v, want [2]", got)
	}
	// An empty session is a timeline with nothing in it.
	empty := build(t, nil, timeline.Options{})
	if len(empty.Milestones)+len(empty.Services)+len(empty.Phases) != 0 {
		t.Errorf("empty session: %+v", empty)
	}
	if _, err := timeline.Build(flows, nil, timeline.Options{}); err == nil {
		t.Error("Build without a catalog: no error")
	}
}

// TestCustomRules: repeat_after, after and quiet_before, from a user's
// rules file.
func TestCustomRules(t *testing.T) {
	rules, err := timeline.ParseRules("mine.yaml", []byte(`
version: 1
milestones:
  - {id: do, title: DO, text: "DO again", repeat_after: 60s, match: [{services: [delivery-optimization]}]}
  - {id: entra, title: Entra, match: [{services: [entra]}]}
  - {id: signin, title: Sign-in, after: do, quiet_before: 5m, match: [{services: [entra]}]}
  - {id: file, title: File, text: got, file_text: " {file}", match: [{paths: ["*.cab"], schemes: [http]}]}
phases:
  - {id: a, name: Before, start: [session-start]}
  - {id: b, name: After, start: [signin]}
content: {min_bytes: 10, slow_factor: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	cab := tf(400, "ctldl.windowsupdate.com")
	cab.Kind, cab.Scheme, cab.URL = flow.KindHTTP, "http", "http://ctldl.windowsupdate.com/a/authrootstl.cab?x=1"
	flows := []flow.Flow{
		tf(0, "login.microsoftonline.com"),
		tf(10, "geo.prod.do.dsp.mp.microsoft.com"),
		tf(40, "geo.prod.do.dsp.mp.microsoft.com"), // 30 s later: same burst
		tf(100, "login.microsoftonline.com"),       // Entra only 100 s after the last: not quiet enough
		tf(200, "kv801.prod.do.dsp.mp.microsoft.com"),
		cab,
		tf(500, "login.microsoftonline.com"), // 400 s of quiet: the sign-in
	}
	tl := build(t, flows, timeline.Options{Rules: rules})
	want := []string{"00:00 entra", "00:10 do", "03:20 do", "06:40 file", "08:20 signin"}
	if got := ids(tl); !slices.Equal(got, want) {
		t.Errorf("milestones %q, want %q", got, want)
	}
	if m := tl.Milestones[3]; m.Text != "got authrootstl.cab" {
		t.Errorf("file text %q", m.Text)
	}
	if len(tl.Phases) != 2 || tl.Phases[1].Name != "After" || tl.Phases[1].StartOffset != 500*time.Second {
		t.Errorf("phases %+v", tl.Phases)
	}
	var slow []string
	for _, a := range tl.Attention {
		if a.Kind == timeline.AttentionSlow {
			slow = append(slow, a.Host.Host)
		}
	}
	// Every transfer moved 1000 B in 1 s: none is slower than half the best.
	if len(slow) != 0 || !strings.Contains(timeline.FormatRate(tl.BestThroughput), "1000 B/s") {
		t.Errorf("slow %v, best %v", slow, tl.BestThroughput)
	}
}

// TestSingleMilestones: one flow to each host makes the milestone its rule
// names (besides first and last flow), with the Autopilot traffic that
// milestones an ordinary PC could also show need around them.
func TestSingleMilestones(t *testing.T) {
	for _, tt := range []struct {
		host, url, want string
	}{
		{"ekop.intel.com", "", "tpm-attestation"},
		{"foo.microsoftaik.azure.net", "", "tpm-attestation"},
		{"ekop.intel.com", "", ""}, // no Autopilot around: Windows Hello on a PC in use attests its TPM too
		{"storeedgefd.dsx.mp.microsoft.com", "", "store"},
		{"naprodimedatapri.azureedge.net", "", "ime-content"},
		{"fef.amsua0602.manage.microsoft.com", "https://fef.amsua0602.manage.microsoft.com/TrafficGateway/TrafficRoutingService/SideCar", "ime-content"},
		{"enterpriseenrollment-s.manage.microsoft.com", "", "intune-enrollment"},
		{"ctldl.windowsupdate.com", "http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/authrootstl.cab", "ctl-refresh"},
		{"dl.google.com", "http://dl.google.com/chrome/install/ChromeStandaloneSetup64.exe", "third-party"},
		{"unknown.example", "", ""},
	} {
		f := tf(0, tt.host)
		flows := []flow.Flow{f}
		if tt.want == "tpm-attestation" {
			flows = append(flows, tf(60, "ztd.dds.microsoft.com"))
		}
		if tt.url != "" {
			f.URL = tt.url
			if strings.HasPrefix(tt.url, "http://") {
				f.Kind, f.Scheme, f.Port = flow.KindHTTP, "http", 80
			}
		}
		flows[0] = f
		tl := build(t, flows, timeline.Options{})
		var got []string
		for _, m := range tl.Milestones {
			if m.ID != "first-flow" && m.ID != "last-flow" && m.ID != "profile-download" {
				got = append(got, m.ID)
			}
		}
		if tt.want == "" && len(got) != 0 || tt.want != "" && !slices.Contains(got, tt.want) {
			t.Errorf("%s %s: milestones %q, want %q", tt.host, tt.url, got, tt.want)
		}
	}
}

// TestInterceptedFile: an HTTPS request that proxy --intercept recorded
// (its URL visible, inside a tunnel) names the file a milestone
// downloaded, and path rules match it; a CONNECT tunnel names none.
func TestInterceptedFile(t *testing.T) {
	tunnel := tf(0, "swda01-mscdn.azureedge.net")
	tunnel.Kind, tunnel.Port = flow.KindConnect, 443
	req := tf(1, "swda01-mscdn.azureedge.net")
	req.Kind, req.Scheme, req.Method, req.Status, req.Tunnel = flow.KindHTTP, "https", "GET", 200, tunnel.Key
	req.URL = "https://swda01-mscdn.azureedge.net/a1b2/content/7zip.intunewin?sv=1&sig=REDACTED"
	tl := build(t, []flow.Flow{tunnel, req}, timeline.Options{})
	var got string
	for _, m := range tl.Milestones {
		if m.ID == "win32-content" {
			got = m.Text
		}
	}
	if want := "An Intune Win32 app (.intunewin) downloads from the Intune content network. File: 7zip.intunewin."; got != want {
		t.Errorf("win32-content text %q, want %q", got, want)
	}
	// The tunnel alone: no file to name.
	tl = build(t, []flow.Flow{tunnel}, timeline.Options{})
	for _, m := range tl.Milestones {
		if m.ID == "win32-content" && strings.Contains(m.Text, "File:") {
			t.Errorf("a tunnel named a file: %q", m.Text)
		}
	}
}

package timeline_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

var update = flag.Bool("update", false, "rewrite the seed fixture and golden files")

// seedFile is the checked-in fixture that reconstructs the seed's run; the
// report and cmd tests read it too.
const seedFile = "testdata/seed.jsonl"

// seedT0 is the seed video's 00:00. Its first traffic is at 00:10.
var seedT0 = time.Date(2019, 9, 3, 15, 0, 0, 0, time.UTC)

// seedFlows reconstructs the run annotated in ../shared/seed (a 2019
// user-driven Autopilot deployment filmed through a proxy): device traffic
// at the seed's timestamps, to the hosts that
// ../shared/reference/autopilot-endpoints.md ("Blog timeline
// reconstruction") gives for each step, with background traffic (Intune
// check-ins, Office and Win32 content, certificate checks, telemetry) so
// that the swimlanes and phases have something to show. Three additions
// are not in the seed and exist to exercise "needs attention": a telemetry
// tunnel that fails, one refused by the proxy, a slow Win32 download and an
// OEM host the catalog does not know. Everything is computed, nothing
// random, so the file is the same on every run.
func seedFlows() []flow.Flow {
	g := &seedGen{}
	at := func(mmss string) time.Duration {
		var m, s int
		if _, err := fmt.Sscanf(mmss, "%d:%d", &m, &s); err != nil {
			panic(err)
		}
		return time.Duration(m)*time.Minute + time.Duration(s)*time.Second
	}
	tls := func(mmss string, host string, up, down int64, dur time.Duration) {
		g.tunnel(at(mmss), host, up, down, dur)
	}
	get := func(mmss, url string, down int64, dur time.Duration) {
		g.get(at(mmss), url, down, dur)
	}
	const kb, mb = 1 << 10, 1 << 20
	ocsp := "http://ocsp.digicert.com/MFEwTzBNMEswSTAJBgUrDgMCGgUABBSAUQYBMq2awn1Rh6Doh%2FsBYgFV7gQUA95QNVbRTLtm8KPiGxvDl7I90VUCEAJ0LqoXyo4hxxe7H%2Fz9DKA%3D"

	// 00:10 first signs of life: device identity and a cleartext OCSP check.
	tls("00:10", "login.live.com", 3*kb, 11*kb, 900*time.Millisecond)
	get("00:10", ocsp, 1*kb+471, 120*time.Millisecond)
	get("00:11", "http://www.msftconnecttest.com/connecttest.txt", 22, 40*time.Millisecond)
	tls("00:11", "login.live.com", 2*kb, 6*kb, 700*time.Millisecond)
	// 00:12 the Autopilot profile.
	tls("00:12", "ztd.dds.microsoft.com", 9*kb, 14*kb, 1400*time.Millisecond)
	get("00:13", "http://crl3.digicert.com/DigiCertGlobalRootG2.crl", 1*kb, 90*time.Millisecond)
	tls("00:14", "cs.dds.microsoft.com", 4*kb, 3*kb, 600*time.Millisecond)
	// 00:18 activation and the OOBE update check.
	tls("00:18", "activation-v2.sls.microsoft.com", 6*kb, 9*kb, 1200*time.Millisecond)
	tls("00:18", "sls.update.microsoft.com", 2*kb, 12*kb, 500*time.Millisecond)
	tls("00:19", "licensing.mp.microsoft.com", 5*kb, 8*kb, 900*time.Millisecond)
	tls("00:19", "fe3cr.delivery.mp.microsoft.com", 30*kb, 210*kb, 2500*time.Millisecond)
	get("00:20", "http://crl.microsoft.com/pki/crl/products/MicProSecSerCA_2007-12-04.crl", 1*kb, 80*time.Millisecond)
	tls("00:21", "validation-v2.sls.microsoft.com", 3*kb, 4*kb, 800*time.Millisecond)
	tls("00:22", "fe2cr.update.microsoft.com", 12*kb, 95*kb, 1800*time.Millisecond)
	tls("00:24", "login.live.com", 2*kb, 5*kb, 600*time.Millisecond)
	// 00:45 the device rebooted: silence, then the connectivity check.
	get("00:45", "http://www.msftconnecttest.com/connecttest.txt", 22, 35*time.Millisecond)
	tls("00:45", "login.live.com", 3*kb, 9*kb, 800*time.Millisecond)
	get("00:46", ocsp, 1*kb+471, 110*time.Millisecond)
	tls("00:47", "ztd.dds.microsoft.com", 5*kb, 7*kb, 900*time.Millisecond)
	tls("00:50", "slscr.update.microsoft.com", 2*kb, 10*kb, 500*time.Millisecond)
	tls("00:52", "fe3cr.delivery.mp.microsoft.com", 20*kb, 120*kb, 1500*time.Millisecond)
	// 01:02 usage events.
	tls("01:02", "v10.events.data.microsoft.com", 48*kb, 2*kb, 700*time.Millisecond)
	tls("01:02", "settings-win.data.microsoft.com", 2*kb, 6*kb, 400*time.Millisecond)
	g.fail(at("01:03"), "v10.vortex-win.data.microsoft.com", "read: connection reset by peer")
	// 01:20 Delivery Optimization.
	tls("01:20", "geo.prod.do.dsp.mp.microsoft.com", 1*kb, 2*kb, 300*time.Millisecond)
	tls("01:21", "kv801.prod.do.dsp.mp.microsoft.com", 2*kb, 9*kb, 400*time.Millisecond)
	// 01:28 Entra ID sign-in page, 01:44 sign-in and MFA.
	tls("01:28", "login.microsoftonline.com", 8*kb, 64*kb, 1100*time.Millisecond)
	tls("01:28", "aadcdn.msauth.net", 3*kb, 410*kb, 1600*time.Millisecond)
	tls("01:29", "secure.aadcdn.microsoftonline-p.com", 2*kb, 180*kb, 1200*time.Millisecond)
	tls("01:29", "aadcdn.msauthimages.net", 1*kb, 95*kb, 800*time.Millisecond)
	tls("01:44", "login.microsoftonline.com", 12*kb, 40*kb, 2200*time.Millisecond)
	tls("01:46", "login.microsoftonline.com", 6*kb, 18*kb, 900*time.Millisecond)
	tls("01:50", "enterpriseregistration.windows.net", 9*kb, 7*kb, 1300*time.Millisecond)
	// 01:56 Defender, and the Entra terms of use page.
	tls("01:56", "wdcp.microsoft.com", 4*kb, 3*kb, 600*time.Millisecond)
	tls("01:56", "account.activedirectory.windowsazure.com", 5*kb, 88*kb, 1500*time.Millisecond)
	// 02:00 first signs of Intune, 02:01 enrollment.
	tls("02:00", "portal.manage.microsoft.com", 4*kb, 35*kb, 900*time.Millisecond)
	tls("02:01", "enrollment.manage.microsoft.com", 3*kb, 6*kb, 700*time.Millisecond)
	tls("02:01", "enterpriseenrollment.manage.microsoft.com", 11*kb, 9*kb, 1600*time.Millisecond)
	tls("02:03", "device.login.microsoftonline.com", 6*kb, 8*kb, 800*time.Millisecond)
	// 02:10 the tenant's scale unit (MSUA01) and the first check-ins.
	tls("02:10", "fef.msua01.manage.microsoft.com", 14*kb, 22*kb, 1900*time.Millisecond)
	tls("02:10", "r.manage.microsoft.com", 18*kb, 60*kb, 2600*time.Millisecond)
	tls("02:12", "config.edge.skype.com", 2*kb, 5*kb, 400*time.Millisecond)
	// Device ESP: OMA-DM check-ins every 45 s until the user signs in.
	for s := at("02:40"); s < at("16:10"); s += 45 * time.Second {
		g.tunnel(s, "r.manage.microsoft.com", 9*kb, 24*kb, 1500*time.Millisecond)
	}
	// IME gateway traffic every 2 minutes from 03:00.
	for s := at("03:00"); s < at("16:10"); s += 2 * time.Minute {
		g.tunnel(s+7*time.Second, "fef.msua01.manage.microsoft.com", 6*kb, 15*kb, 900*time.Millisecond)
	}
	// Certificate checks and telemetry throughout.
	for s := at("02:30"); s < at("20:00"); s += 97 * time.Second {
		g.get(s+3*time.Second, ocsp, 1*kb+471, 100*time.Millisecond)
	}
	for s := at("03:30"); s < at("20:00"); s += 3 * time.Minute {
		g.tunnel(s+11*time.Second, "v10.events.data.microsoft.com", 40*kb, 2*kb, 600*time.Millisecond)
	}
	g.refuse(at("05:31"), "watson.telemetry.microsoft.com", "not in the allowlist")
	// 02:56 Office: setup.exe, then Click-to-Run streams until about 08:00.
	get("02:56", "http://officecdn.microsoft.com/pr/wsus/setup.exe", 7*mb+311*kb, 900*time.Millisecond)
	get("02:57", "http://officecdn.microsoft.com/pr/492350f6-3a01-4f97-b9c0-c7c6ddf67d60/Office/Data/v64.cab", 180*kb, 200*time.Millisecond)
	for i, s := 0, at("03:02"); s < at("08:00"); i, s = i+1, s+12*time.Second {
		down := int64(38+(i*7)%23) * mb
		url := fmt.Sprintf("http://officecdn.microsoft.com.edgesuite.net/pr/492350f6-3a01-4f97-b9c0-c7c6ddf67d60/Office/Data/16.0.11929.20254/stream.x64.x-none.%d.dat", i)
		g.get(s, url, down, time.Duration(down/(24*kb))*time.Millisecond) // ~24 MiB/s
	}
	// 02:58 the Intune Management Extension agent.
	tls("02:58", "naprodimedatapri.azureedge.net", 2*kb, 11*mb, 1300*time.Millisecond)
	// 03:22 WNS, and Office configuration.
	tls("03:22", "client.wns.windows.com", 3*kb, 4*kb, 500*time.Millisecond)
	tls("03:23", "officeclient.microsoft.com", 4*kb, 22*kb, 800*time.Millisecond)
	tls("03:24", "ols.officeapps.live.com", 5*kb, 9*kb, 700*time.Millisecond)
	// 03:51 OneDrive.
	tls("03:51", "g.live.com", 2*kb, 6*kb, 500*time.Millisecond)
	tls("03:52", "oneclient.sfx.ms", 3*kb, 42*mb, 2100*time.Millisecond)
	// 04:06 Delivery Optimization again, then Win32 apps through IME.
	tls("04:06", "geo.prod.do.dsp.mp.microsoft.com", 1*kb, 2*kb, 300*time.Millisecond)
	tls("04:06", "cp801.prod.do.dsp.mp.microsoft.com", 2*kb, 7*kb, 400*time.Millisecond)
	for i, s := range []string{"04:07", "06:54", "09:40", "11:10", "11:45", "12:20"} {
		down := int64(40+i*25) * mb
		g.tunnel(at(s), "swda01-mscdn.azureedge.net", 8*kb, down, time.Duration(down/(20*kb))*time.Millisecond)
	}
	tls("05:10", "kv801.prod.do.dsp.mp.microsoft.com", 2*kb, 9*kb, 400*time.Millisecond)
	// A slow one: 9 MiB at about 60 KiB/s.
	tls("07:30", "swda02-mscdn.azureedge.net", 6*kb, 9*mb, 153*time.Second)
	// 04:45 Teams.
	tls("04:45", "statics.teams.microsoft.com", 3*kb, 96*mb, 4*time.Second)
	tls("04:47", "teams.microsoft.com", 6*kb, 30*kb, 900*time.Millisecond)
	// 11:39 the trusted root list.
	get("11:39", "http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/authrootstl.cab?6d6d6e6f5d3e1a2b", 64*kb, 300*time.Millisecond)
	get("11:40", "http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/disallowedcertstl.cab?1c2f0a9e", 5*kb, 120*time.Millisecond)
	// 16:19 device ESP done: the user signs in; Chrome updates itself.
	tls("16:19", "login.microsoftonline.com", 9*kb, 44*kb, 1200*time.Millisecond)
	get("16:19", "http://dl.google.com/release2/update2/ALBxE6d1OHWj8JgM8r3wvLU_1.3.36.82/GoogleUpdateSetup.exe", 1*mb+310*kb, 200*time.Millisecond)
	tls("16:20", "tools.google.com", 3*kb, 4*kb, 500*time.Millisecond)
	tls("16:30", "oem-agent.contoso-devices.example", 2*kb, 1*kb, 300*time.Millisecond)
	// 16:45 Teams during the first sign-in animation; 17:13 user ESP.
	tls("16:45", "teams.microsoft.com", 5*kb, 20*kb, 800*time.Millisecond)
	tls("17:13", "r.manage.microsoft.com", 7*kb, 15*kb, 1200*time.Millisecond)
	tls("17:14", "login.microsoftonline.com", 4*kb, 12*kb, 700*time.Millisecond)
	// 17:28 and 17:54 live tiles, and Google again.
	get("17:28", "http://tile-service.weather.microsoft.com/en-US/livetile/preinstall?region=US&appid=C98EA5B0842DBB9405BBF071E1DA76512D21FE36", 6*kb, 300*time.Millisecond)
	tls("17:54", "tools.google.com", 3*kb, 4*kb, 500*time.Millisecond)
	get("17:54", "http://blob.weather.microsoft.com/static/weather4/en-us/law/30.png", 9*kb, 200*time.Millisecond)
	tls("19:05", "r.manage.microsoft.com", 6*kb, 11*kb, 900*time.Millisecond)
	// 20:13 Teams launches.
	tls("20:13", "teams.microsoft.com", 7*kb, 52*kb, 1100*time.Millisecond)
	tls("20:13", "statics.teams.microsoft.com", 2*kb, 3*mb, 900*time.Millisecond)
	return g.done()
}

// seedGen assembles the fixture's flows.
type seedGen struct{ flows []flow.Flow }

func (g *seedGen) base(off time.Duration, dur time.Duration) flow.Flow {
	start := seedT0.Add(off)
	return flow.Flow{
		Start: start, End: start.Add(dur), Client: "10.0.0.23", ClientPort: 49152, Device: "autopilot-vm",
		Source: flow.SourceProxy, Decision: flow.DecisionAllowed,
	}
}

func (g *seedGen) tunnel(off time.Duration, host string, up, down int64, dur time.Duration) {
	f := g.base(off, dur)
	f.Kind, f.Method, f.Scheme, f.Host, f.Port, f.Status = flow.KindConnect, "CONNECT", "https", host, 443, 200
	f.BytesUp, f.BytesDown, f.SNI, f.ALPN, f.TLSVersion = up, down, host, "h2,http/1.1", "1.2"
	g.flows = append(g.flows, f)
}

func (g *seedGen) get(off time.Duration, url string, down int64, dur time.Duration) {
	f := g.base(off, dur)
	host := url[len("http://"):]
	for i := 0; i < len(host); i++ {
		if host[i] == '/' {
			host = host[:i]
			break
		}
	}
	f.Kind, f.Method, f.Scheme, f.Host, f.Port, f.URL, f.Status = flow.KindHTTP, "GET", "http", host, 80, url, 200
	f.BytesUp, f.BytesDown = 420, down
	g.flows = append(g.flows, f)
}

func (g *seedGen) fail(off time.Duration, host, err string) {
	g.tunnel(off, host, 1200, 0, 2*time.Second)
	f := &g.flows[len(g.flows)-1]
	f.Error, f.BytesDown = err, 0
}

func (g *seedGen) refuse(off time.Duration, host, reason string) {
	g.tunnel(off, host, 0, 0, 0)
	f := &g.flows[len(g.flows)-1]
	f.Status, f.Decision, f.Reason, f.SNI, f.ALPN, f.TLSVersion = 403, flow.DecisionDenied, reason, "", "", ""
}

// done orders the flows by start and numbers them as a store would.
func (g *seedGen) done() []flow.Flow {
	slices.SortStableFunc(g.flows, func(a, b flow.Flow) int { return a.Start.Compare(b.Start) })
	for i := range g.flows {
		g.flows[i].ID = int64(i + 1)
		g.flows[i].Key = fmt.Sprintf("seed-%04d", i+1)
		g.flows[i].ClientPort = 49152 + i%16000
	}
	return g.flows
}

// loadSeed reads the checked-in fixture, rewriting it first with -update.
func loadSeed(t *testing.T) []flow.Flow {
	t.Helper()
	if *update {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, f := range seedFlows() {
			if err := enc.Encode(f); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(seedFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flows, err := readJSONL(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	return flows
}

func readJSONL(name string) ([]flow.Flow, error) {
	fh, err := os.Open(filepath.FromSlash(name))
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var out []flow.Flow
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var f flow.Flow
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, n, err)
		}
		out = append(out, f)
	}
	return out, sc.Err()
}

// TestSeedFixtureIsGenerated keeps the checked-in fixture equal to what
// the generator makes, so nobody edits one and forgets the other.
func TestSeedFixtureIsGenerated(t *testing.T) {
	got := loadSeed(t)
	want := seedFlows()
	if len(got) != len(want) {
		t.Fatalf("%s has %d flows, the generator makes %d (run go test -update)", seedFile, len(got), len(want))
	}
	for i := range want {
		if !got[i].Start.Equal(want[i].Start) || got[i].Host != want[i].Host || got[i].Key != want[i].Key ||
			got[i].BytesDown != want[i].BytesDown || got[i].URL != want[i].URL {
			t.Fatalf("%s flow %d differs from the generator (run go test -update):\n got %+v\nwant %+v", seedFile, i+1, got[i], want[i])
		}
	}
}

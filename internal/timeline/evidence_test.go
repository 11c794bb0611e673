package timeline_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// evidenceFlows is a device whose attempts mostly fail: DNS failures, a
// refused and a reset CONNECT, a tunnel without a TLS handshake, an
// unused tunnel, and one plain-HTTP download that works.
func evidenceFlows() []flow.Flow {
	t0 := at("2026-03-02T09:00:00Z")
	var out []flow.Flow
	add := func(sec float64, f flow.Flow) {
		f.Start = t0.Add(time.Duration(sec * float64(time.Second)))
		if f.End.IsZero() {
			f.End = f.Start.Add(300 * time.Millisecond)
		}
		f.Client, f.Source = "10.0.0.23", flow.SourceProxy
		out = append(out, f)
	}
	get := func(url string, status int, down int64, err string) flow.Flow {
		host := strings.SplitN(strings.TrimPrefix(url, "http://"), "/", 2)[0]
		return flow.Flow{Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: host, Port: 80, URL: url, Status: status,
			BytesUp: 400, BytesDown: down, Error: err, Decision: flow.DecisionAllowed}
	}
	tunnel := func(host string, status int, up, down int64, sni, err string) flow.Flow {
		return flow.Flow{Kind: flow.KindConnect, Method: "CONNECT", Scheme: "https", Host: host, Port: 443, Status: status,
			BytesUp: up, BytesDown: down, SNI: sni, Error: err, Decision: flow.DecisionAllowed}
	}
	add(0, get("http://www.msftconnecttest.com/connecttest.txt", 200, 22, ""))
	for _, s := range []float64{1, 3, 5} {
		add(s, get("http://enrollment.manage.microsoft.com/EnrollmentServer/Discovery.svc", 502, 0,
			"dial tcp: lookup enrollment.manage.microsoft.com on 127.0.0.53:53: no such host"))
	}
	add(6, flow.Flow{Kind: flow.KindDNS, Host: "ztd.dds.microsoft.com", Port: 53, BytesUp: 40, Error: "NXDOMAIN"})
	// A name that resolves is intent, not evidence: no Entra sign-in.
	add(7, flow.Flow{Kind: flow.KindDNS, Host: "login.microsoftonline.com", Port: 53, BytesUp: 40, BytesDown: 120})
	add(8, get("http://dl.google.com/update/current", 502, 0, "dial tcp 142.250.1.1:80: connect: connection refused"))
	add(10, tunnel("wdcp.microsoft.com", 200, 517, 0, "wdcp.microsoft.com", "")) // hello sent, nothing back
	add(11, tunnel("client.wns.windows.com", 200, 0, 0, "", ""))                 // opened, never used
	add(12, flow.Flow{Kind: flow.KindConnect, Method: "CONNECT", Host: "activation-v2.sls.microsoft.com", Port: 443, Status: 403,
		Decision: flow.DecisionDenied, Reason: "not in the allowlist"})
	add(13, tunnel("teams.microsoft.com", 502, 0, 0, "", "dial tcp 52.1.1.1:443: read: connection reset by peer"))
	add(30, get("http://dl.google.com/release2/x/GoogleUpdateSetup.exe", 200, 1<<20, ""))
	add(31, get("http://tile-service.weather.microsoft.com/en-US/livetile/preinstall", 404, 30, "")) // the server said no
	return out
}

// TestMilestoneNeedsEvidence: failed flows fire no milestone; they are
// under "needs attention" with their reason, attempts, first and last
// time, and the milestone they blocked.
func TestMilestoneNeedsEvidence(t *testing.T) {
	tl, err := timeline.Build(evidenceFlows(), catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ms []string
	for _, m := range tl.Milestones {
		ms = append(ms, timeline.FormatOffset(m.Offset)+" "+m.ID)
	}
	want := []string{"00:00 first-flow", "00:00 connectivity-check", "00:30 third-party", "00:31 last-flow"}
	if !slices.Equal(ms, want) {
		t.Errorf("milestones:\n got %q\nwant %q", ms, want)
	}
	for _, m := range tl.Milestones {
		if m.ID == "third-party" && (!strings.Contains(m.Text, "File: GoogleUpdateSetup.exe.") || m.Flows != 1) {
			t.Errorf("third-party: %q, %d flows; want only the download that worked, File: GoogleUpdateSetup.exe", m.Text, m.Flows)
		}
	}
	var att []string
	for _, a := range tl.Attention {
		att = append(att, fmt.Sprintf("%s %s %q %d %s-%s blocks=%s(%s) fired=%v", a.Kind, a.Host.Host, a.Detail, a.Flows,
			timeline.FormatOffset(a.Offset), timeline.FormatOffset(a.LastOffset), a.Blocks, a.BlocksTitle, a.BlocksFired))
	}
	wantAtt := []string{
		`refused activation-v2.sls.microsoft.com "refused by the proxy: not in the allowlist" 1 00:12-00:12 blocks=activation(Windows activation) fired=false`,
		`failed enrollment.manage.microsoft.com "name not resolved" 3 00:01-00:05 blocks=intune-enrollment(Intune enrollment) fired=false`,
		`failed ztd.dds.microsoft.com "name not resolved" 1 00:06-00:06 blocks=profile-download(Autopilot profile download) fired=false`,
		`failed dl.google.com "connection refused" 1 00:08-00:08 blocks=third-party(Third-party content) fired=true`,
		`failed wdcp.microsoft.com "no TLS handshake (the server sent 0 bytes)" 1 00:10-00:10 blocks=defender(Defender) fired=false`,
		`failed teams.microsoft.com "connection reset" 1 00:13-00:13 blocks=teams(Teams) fired=false`,
		`failed tile-service.weather.microsoft.com "HTTP 404" 1 00:31-00:31 blocks=desktop(Desktop (likely)) fired=false`,
	}
	if !slices.Equal(att, wantAtt) {
		t.Errorf("attention:\n got %s\nwant %s", strings.Join(att, "\n     "), strings.Join(wantAtt, "\n     "))
	}
}

// Package synth makes synthetic provisioning sessions of any size, for
// benchmarks and load tests of the timeline and its renderers. The flows
// are deterministic (no randomness): the same n gives the same flows.
package synth

import (
	"strconv"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// hosts is a mix of what a provisioning device talks to: catalog hosts of
// every phase, some plain-HTTP ones, and hosts no catalog knows.
var hosts = []struct {
	host  string
	plain bool
	down  int64
}{
	{"www.msftconnecttest.com", true, 22}, {"login.live.com", false, 9 << 10}, {"ocsp.digicert.com", true, 1500},
	{"ztd.dds.microsoft.com", false, 14 << 10}, {"activation-v2.sls.microsoft.com", false, 9 << 10},
	{"sls.update.microsoft.com", false, 12 << 10}, {"fe3cr.delivery.mp.microsoft.com", false, 200 << 10},
	{"v10.events.data.microsoft.com", false, 2 << 10}, {"geo.prod.do.dsp.mp.microsoft.com", false, 2 << 10},
	{"login.microsoftonline.com", false, 40 << 10}, {"aadcdn.msauth.net", false, 400 << 10},
	{"enterpriseregistration.windows.net", false, 7 << 10}, {"enrollment.manage.microsoft.com", false, 6 << 10},
	{"fef.msua01.manage.microsoft.com", false, 20 << 10}, {"r.manage.microsoft.com", false, 30 << 10},
	{"officecdn.microsoft.com.edgesuite.net", true, 40 << 20}, {"naprodimedatapri.azureedge.net", false, 11 << 20},
	{"swda01-mscdn.azureedge.net", false, 80 << 20}, {"client.wns.windows.com", false, 4 << 10},
	{"g.live.com", false, 6 << 10}, {"statics.teams.microsoft.com", false, 90 << 20},
	{"ctldl.windowsupdate.com", true, 64 << 10}, {"dl.google.com", true, 1 << 20}, {"wdcp.microsoft.com", false, 3 << 10},
	{"tile-service.weather.microsoft.com", true, 6 << 10}, {"settings-win.data.microsoft.com", false, 6 << 10},
	{"oem-agent.contoso-devices.example", false, 1 << 10}, {"cdn.vendor-tools.example", false, 2 << 20},
}

// Flows returns a session of n flows of one device starting at start, one
// flow every span/n. Every 997th flow fails and every 5003rd is refused,
// so "needs attention" has work to do.
func Flows(n int, start time.Time, span time.Duration) []flow.Flow {
	out := make([]flow.Flow, n)
	step := span / time.Duration(max(n, 1))
	for i := range out {
		h := hosts[(i*7919+i/1000)%len(hosts)]
		s := start.Add(time.Duration(i) * step)
		dur := 200*time.Millisecond + time.Duration(h.down/(20<<10))*time.Millisecond
		f := flow.Flow{
			ID: int64(i + 1), Key: "synth-" + strconv.Itoa(i), Start: s, End: s.Add(dur), Client: "10.0.0.23",
			Device: "bench-vm", Source: flow.SourceProxy, Host: h.host, BytesUp: 600, BytesDown: h.down,
			Decision: flow.DecisionAllowed, Status: 200,
		}
		if h.plain {
			f.Kind, f.Method, f.Scheme, f.Port = flow.KindHTTP, "GET", "http", 80
			f.URL = "http://" + h.host + "/content/file.bin"
		} else {
			f.Kind, f.Method, f.Scheme, f.Port, f.SNI = flow.KindConnect, "CONNECT", "https", 443, h.host
		}
		switch {
		case i%5003 == 5002:
			f.Decision, f.Reason, f.Status, f.BytesDown = flow.DecisionDenied, "not in the allowlist", 403, 0
		case i%997 == 996:
			f.Error, f.BytesDown = "read: connection reset by peer", 0
		}
		out[i] = f
	}
	return out
}

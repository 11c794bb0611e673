package importtest

import (
	"fmt"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/target"
)

// maxReported bounds how many broken invariants Check reports for one read:
// a fuzz input can break one on every flow.
const maxReported = 20

// Check fails t for every invariant that flows, all that one Read of one
// file emitted, break (see Violations).
func Check(t testing.TB, flows []flow.Flow) {
	t.Helper()
	vs := Violations(flows)
	for i, v := range vs {
		if i == maxReported {
			t.Errorf("… and %d more broken invariants", len(vs)-maxReported)
			break
		}
		t.Error(v)
	}
}

// Violations lists the invariants that the flows of one Read of one file
// break, one message each ("flow 3 (key line:3): …"). Every format reader
// keeps them, whatever its input:
//
//   - Key is set, and no two flows share one: a flow emitted twice would
//     repeat its Key, so this is also "nothing is duplicated" (two equal
//     conversations, a retry, are two flows with two Keys);
//   - Source is set;
//   - Start is set, and End, when set (zero is "open, or end not
//     recorded"), is not before Start;
//   - BytesUp and BytesDown are ≥ 0. No reader reports an unknown count as
//     -1: HAR's -1 ("not applicable") header and body sizes count as 0,
//     so an unknown count is 0 too;
//   - Port and ClientPort are 0 (unknown) to 65535, Status 0 (none) to 999;
//   - Host, when set, is lower-case and valid: an IP address literal (an
//     IPv6 one without brackets), or a name of ASCII letters, digits, '-'
//     and '_' in dot-separated labels of 1 to 63 bytes, 253 bytes at most,
//     with no port, no spaces, no trailing dot: a Unicode name is in its
//     IDNA ASCII form ("xn--…"). A flow may have no Host only when the
//     capture did not name its target (a netlog request that failed
//     before its URL, …); Check does not require one.
func Violations(flows []flow.Flow) []string {
	var out []string
	keys := make(map[string]int, len(flows))
	for i := range flows {
		f := &flows[i]
		bad := func(format string, args ...any) {
			out = append(out, fmt.Sprintf("flow %d (key %q): ", i+1, f.Key)+fmt.Sprintf(format, args...))
		}
		if f.Key == "" {
			bad("no Key")
		} else if first, ok := keys[f.Key]; ok {
			bad("Key already used by flow %d", first)
		} else {
			keys[f.Key] = i + 1
		}
		if f.Source == "" {
			bad("no Source")
		}
		if f.Start.IsZero() {
			bad("no Start")
		}
		if !f.End.IsZero() && f.End.Before(f.Start) {
			bad("End %s is before Start %s", f.End.Format("2006-01-02T15:04:05.999999999Z07:00"), f.Start.Format("2006-01-02T15:04:05.999999999Z07:00"))
		}
		if f.BytesUp < 0 || f.BytesDown < 0 {
			bad("negative bytes: up %d, down %d", f.BytesUp, f.BytesDown)
		}
		if f.Port < 0 || f.Port > 65535 || f.ClientPort < 0 || f.ClientPort > 65535 {
			bad("port out of range: Port %d, ClientPort %d", f.Port, f.ClientPort)
		}
		if f.Status < 0 || f.Status > 999 {
			bad("Status %d out of range", f.Status)
		}
		if f.Host != "" {
			if why := target.HostProblem(f.Host); why != "" {
				bad("Host %q %s", f.Host, why)
			}
		}
	}
	return out
}

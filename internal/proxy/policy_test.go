package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// TestPolicy: a target the Policy denies gets 403 with the rule as its
// body, is never dialled, and is recorded as denied with the rule as
// Reason; for CONNECT, plain HTTP and absolute https:// alike. Allowed
// targets pass as before.
func TestPolicy(t *testing.T) {
	e := newEnv(t, func(p *Proxy) {
		p.Policy = func(host string, port int) (bool, string) {
			if host == ztdHost || host == plainHost && port == 80 {
				return false, fmt.Sprintf("denied by denylist rule deny.txt:2 (%s)", host)
			}
			return true, "allowed by allowlist rule allow.txt:1 (.microsoft.com)"
		}
	})
	cases := []struct{ req, wantHead, wantBody string }{
		{"CONNECT " + ztdHost + ":443 HTTP/1.1\r\nHost: " + ztdHost + ":443\r\n\r\n",
			"HTTP/1.1 403 Forbidden", "pilotwire: 403 Forbidden: denied by denylist rule deny.txt:2 (" + ztdHost + ")\n"},
		{"GET http://" + plainHost + "/x HTTP/1.1\r\nHost: " + plainHost + "\r\n\r\n",
			"HTTP/1.1 403 Forbidden", "pilotwire: 403 Forbidden: denied by denylist rule deny.txt:2 (" + plainHost + ")\n"},
		{"GET https://" + ztdHost + "/x HTTP/1.1\r\nHost: " + ztdHost + "\r\n\r\n",
			"HTTP/1.1 403 Forbidden", "pilotwire: 403 Forbidden: denied by denylist rule deny.txt:2 (" + ztdHost + ")\n"},
		{"CONNECT " + fefHost + ":443 HTTP/1.1\r\nHost: " + fefHost + ":443\r\n\r\n", "HTTP/1.1 200 Connection established", ""},
	}
	dials := e.net.Dials()
	for _, tc := range cases {
		raw := e.rawRequest(tc.req)
		if !strings.HasPrefix(raw, tc.wantHead) || !strings.HasSuffix(raw, "\r\n\r\n"+tc.wantBody) {
			t.Errorf("%q:\n got %q\nwant %q … %q", tc.req, raw, tc.wantHead, tc.wantBody)
		}
	}
	if n := e.net.Dials() - dials; n != 1 {
		t.Errorf("%d dials, want 1 (the allowed tunnel only)", n)
	}
	flows := e.flows()
	var denied []string
	for _, f := range flows {
		if f.Decision == flow.DecisionDenied {
			denied = append(denied, fmt.Sprintf("%s %s:%d %d %s", f.Kind, f.Host, f.Port, f.Status, f.Reason))
		}
	}
	want := []string{
		"connect " + ztdHost + ":443 403 denied by denylist rule deny.txt:2 (" + ztdHost + ")",
		"http " + plainHost + ":80 403 denied by denylist rule deny.txt:2 (" + plainHost + ")",
		"http " + ztdHost + ":443 403 denied by denylist rule deny.txt:2 (" + ztdHost + ")",
	}
	if strings.Join(denied, "\n") != strings.Join(want, "\n") {
		t.Errorf("denied flows:\n%s\nwant\n%s", strings.Join(denied, "\n"), strings.Join(want, "\n"))
	}
}

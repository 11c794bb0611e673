package intercept

import (
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/pattern"
)

// Decide's order: the catalog's no-inspect, --no-intercept, the learned
// list, --intercept-hosts; the CONNECT host or the SNI being excluded is
// enough.
func TestDecide(t *testing.T) {
	i := New(Options{
		Hosts: []pattern.Pattern{pattern.MustParse("*.example.com")},
		Never: []pattern.Pattern{pattern.MustParse("never.example.com")},
		DoNotInspect: func(host string) (string, bool) {
			return "pins its key", host == "pinned.example.com"
		},
		Learned: []flow.PassThrough{{Host: "learned.example.com", Reason: "client closed"}},
	})
	for _, tc := range []struct {
		host, sni string
		want      Decision
	}{
		{"a.example.com", "", Decision{Intercept: true}},
		{"a.example.com", "A.Example.com.", Decision{Intercept: true}},
		{"pinned.example.com", "", Decision{Why: "catalog marks pinned.example.com do not inspect: pins its key"}},
		{"a.example.com", "pinned.example.com", Decision{Why: "catalog marks pinned.example.com do not inspect: pins its key"}},
		{"never.example.com", "", Decision{Why: "--no-intercept never.example.com"}},
		{"learned.example.com", "", Decision{Why: "learned pass-through (client closed)"}},
		{"other.org", "", Decision{Why: "not in --intercept-hosts"}},
		// The SNI names the certificate: it decides --intercept-hosts.
		{"other.org", "b.example.com", Decision{Intercept: true}},
		{"b.example.com", "other.org", Decision{Why: "not in --intercept-hosts"}},
	} {
		if got := i.Decide(tc.host, tc.sni); got != tc.want {
			t.Errorf("Decide(%q, %q) = %+v, want %+v", tc.host, tc.sni, got, tc.want)
		}
	}
	// Learning once calls OnLearn once; the first reason stays.
	var calls int
	j := New(Options{OnLearn: func(flow.PassThrough) { calls++ }})
	j.learn(flow.PassThrough{Host: "x.example", Reason: "first"})
	j.learn(flow.PassThrough{Host: "x.example", Reason: "second"})
	if got := j.Learned(); calls != 1 || len(got) != 1 || got[0].Reason != "first" {
		t.Errorf("learned %+v after %d calls", got, calls)
	}
}

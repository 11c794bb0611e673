package flow_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/pattern"
)

func TestFilterMatch(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	ok := flow.Flow{ID: 7, Start: t0, End: t0.Add(time.Second), Client: "10.0.0.23", Device: "vm-01", Kind: flow.KindHTTP,
		Method: "GET", Host: "ztd.dds.microsoft.com", URL: "https://ztd.dds.microsoft.com/Autopilot/Profile?x=Y", Status: 200, BytesDown: 900}
	failed := ok
	failed.Status, failed.ID = 503, 8
	denied := ok
	denied.Decision, denied.ID = flow.DecisionDenied, 9
	hosts := func(ps ...string) []pattern.Pattern {
		var out []pattern.Pattern
		for _, p := range ps {
			out = append(out, pattern.MustParse(p))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    flow.Filter
		fl   flow.Flow
		want bool
	}{
		{"empty", flow.Filter{}, ok, true},
		{"device", flow.Filter{Client: "vm-01"}, ok, true},
		{"host exact", flow.Filter{Hosts: hosts("ZTD.dds.microsoft.com")}, ok, true},
		{"host one label is not a substring", flow.Filter{Hosts: hosts("*.microsoft.com")}, ok, true},
		{"host label-wise", flow.Filter{Hosts: hosts("ztd.*.com")}, ok, true},
		{"host in-label star stays in the label", flow.Filter{Hosts: hosts("ztd*.com")}, ok, false},
		{"hosts any of", flow.Filter{Hosts: hosts("login.live.com", "*.dds.microsoft.com")}, ok, true},
		{"hosts none of", flow.Filter{Hosts: hosts("login.live.com", "*.manage.microsoft.com")}, ok, false},
		{"text in host, either case", flow.Filter{Text: "DDS.Micro"}, ok, true},
		{"text in URL", flow.Filter{Text: "autopilot/profile"}, ok, true},
		{"text absent", flow.Filter{Text: "enrollment"}, ok, false},
		{"problems: a success is not", flow.Filter{Problems: true}, ok, false},
		{"problems: a 503 is", flow.Filter{Problems: true}, failed, true},
		{"problems: a refusal is", flow.Filter{Problems: true}, denied, true},
		{"before a later start", flow.Filter{Before: flow.Position{Start: t0.Add(time.Nanosecond), ID: 1}}, ok, true},
		{"before the same start and a larger ID", flow.Filter{Before: flow.Position{Start: t0, ID: 8}}, ok, true},
		{"not before itself", flow.Filter{Before: flow.PositionOf(&ok)}, ok, false},
		{"not before an earlier start", flow.Filter{Before: flow.Position{Start: t0.Add(-time.Nanosecond), ID: 100}}, ok, false},
	} {
		if got := tc.f.Match(&tc.fl); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzText compares Filter.Text's folding with lower-casing both sides.
func FuzzText(f *testing.F) {
	for _, s := range [][2]string{{"login.MicrosoftOnline.com", "microsoftONLINE"}, {"ÄBC", "äbc"}, {"abc", ""}, {"a", "ab"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, host, text string) {
		if text == "" {
			return
		}
		fl := flow.Flow{Host: host}
		filter := flow.Filter{Text: text}
		want := strings.Contains(flow.LowerASCII(host), flow.LowerASCII(text))
		if got := filter.Match(&fl); got != want {
			t.Fatalf("Text %q in host %q: Match = %v, want %v", text, host, got, want)
		}
	})
}

// TestFilterRead: the fields a store reads for a filter.
func TestFilterRead(t *testing.T) {
	for _, tc := range []struct {
		f     flow.Filter
		exact bool
		want  flow.Fields
	}{
		{flow.Filter{}, true, flow.FieldsDefault},
		{flow.Filter{Brief: true}, true, flow.FieldsBrief},
		{flow.Filter{Brief: true, Fields: flow.FieldHost}, true, flow.FieldsBrief},
		{flow.Filter{Fields: flow.FieldHost}, true, flow.FieldHost},
		{flow.Filter{Fields: flow.FieldBodies}, true, flow.FieldBodies},
		{flow.Filter{Fields: flow.FieldHost}, false, flow.FieldsDefault},
		{flow.Filter{Fields: flow.FieldBodies}, false, flow.FieldsAll},
		{flow.Filter{Brief: true}, false, flow.FieldsDefault},
	} {
		if got := tc.f.Read(tc.exact); got != tc.want {
			t.Errorf("%+v.Read(%v) = %b, want %b", tc.f, tc.exact, got, tc.want)
		}
	}
}

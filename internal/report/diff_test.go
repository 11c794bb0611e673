package report_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/diff"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// slowOfficeRun is the seed's run again on a worse network: the Office
// CDN six times slower, everything after Office's first download ten
// minutes later, and Windows activation refused by the proxy.
func slowOfficeRun(t testing.TB) []flow.Flow {
	flows := readJSONL(t, seedFixture)
	var officeStart time.Time
	for _, f := range flows {
		if strings.HasPrefix(f.Host, "officecdn.") && (officeStart.IsZero() || f.Start.Before(officeStart)) {
			officeStart = f.Start
		}
	}
	if officeStart.IsZero() {
		t.Fatal("the seed has no Office CDN flow")
	}
	const later = 10 * time.Minute
	for i := range flows {
		f := &flows[i]
		if strings.HasPrefix(f.Host, "officecdn.") && !f.End.IsZero() {
			f.End = f.Start.Add(6 * f.End.Sub(f.Start))
		}
		if f.Start.After(officeStart) {
			f.Start = f.Start.Add(later)
			if !f.End.IsZero() {
				f.End = f.End.Add(later)
			}
		}
		if f.Host == "activation-v2.sls.microsoft.com" {
			f.Decision, f.Reason, f.BytesDown, f.Status = flow.DecisionDenied, "not in the allowlist", 0, 403
		}
		f.Device = "autopilot-vm-2"
	}
	return flows
}

func seedDiff(t testing.TB) *diff.Diff {
	a := seedTimeline(t)
	flowsB := slowOfficeRun(t)
	b, err := timeline.Build(flowsB, catalog.Default(), timeline.Options{T0: flowsB[0].Start.Add(-10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	b.Session.Number = 2
	hosts := func(fs []flow.Flow) map[string]int64 {
		m := map[string]int64{}
		for _, f := range fs {
			m[f.Host] += f.Bytes()
		}
		return m
	}
	flowsA := readJSONL(t, seedFixture)
	flowsB = append(flowsB, flow.Flow{Host: "cdn.slow-mirror.example", BytesDown: 1 << 20}) // a host only B used
	return diff.Compare(diff.Side{Timeline: a, Hosts: hosts(flowsA), Name: "seed.jsonl"},
		diff.Side{Timeline: b, Hosts: hosts(flowsB), Name: "slow-office.jsonl"})
}

// TestDiffGolden keeps each format's rendering of the seed's run compared
// with the same run on a slower Office CDN with activation blocked.
func TestDiffGolden(t *testing.T) {
	d := seedDiff(t)
	for _, tt := range []struct{ format, file string }{
		{"text", "diff.txt"},
		{"markdown", "diff.md"},
		{"json", "diff.json"},
		{"html", "diff.html"},
	} {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := report.RenderDiff(&buf, tt.format, d, seedOpts); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, buf.Bytes())
		})
	}
}

package timeline_test

import (
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/timeline"
	"github.com/pilotwire/pilotwire/internal/timeline/synth"
)

// BenchmarkBuild measures the timeline of a synthetic session of 1,000,000
// flows (bench/report measures the JSON report end to end, with peak
// memory).
func BenchmarkBuild(b *testing.B) {
	flows := synth.Flows(1_000_000, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), 4*time.Hour)
	cat := catalog.Default()
	rules, err := timeline.DefaultRules()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tl, err := timeline.Build(flows, cat, timeline.Options{Rules: rules})
		if err != nil {
			b.Fatal(err)
		}
		if tl.Session.Flows != 1_000_000 {
			b.Fatalf("session has %d flows", tl.Session.Flows)
		}
	}
}

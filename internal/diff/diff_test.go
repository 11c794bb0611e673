package diff_test

import (
	"slices"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/diff"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

func TestCompare(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	band := func(id string, span time.Duration, bytes int64) timeline.Band {
		return timeline.Band{Service: catalog.Service{ID: id, Name: id}, First: t0, Last: t0.Add(span), BytesDown: bytes, Flows: 1}
	}
	a := &timeline.Timeline{
		Session:  timeline.Session{Number: 1, Start: t0, End: t0.Add(10 * time.Minute), Flows: 3},
		Services: []timeline.Band{band("office", 5*time.Minute, 100), band("teams", time.Minute, 10), band("intune", 2*time.Minute, 5)},
		Milestones: []timeline.Milestone{
			{ID: "first", Title: "First", Offset: 0}, {ID: "office", Title: "Office", Offset: 2 * time.Minute},
			{ID: "gone", Title: "Only in A", Offset: 3 * time.Minute}, {ID: "office", Title: "Office again", Offset: 4 * time.Minute},
		},
		Phases: []timeline.Phase{{ID: "esp", Name: "ESP", Start: t0, End: t0.Add(5 * time.Minute)}},
		Attention: []timeline.Attention{
			{Kind: timeline.AttentionFailed, Host: timeline.HostRef{Host: "x.example"}, Detail: "HTTP 503", Flows: 2},
			{Kind: timeline.AttentionUnknownHost, Host: timeline.HostRef{Host: "y.example"}, Flows: 1},
		},
	}
	b := &timeline.Timeline{
		Session:  timeline.Session{Number: 2, Start: t0, End: t0.Add(30 * time.Minute), Flows: 3},
		Services: []timeline.Band{band("teams", time.Minute, 10), band("office", 25*time.Minute, 100), band("edge", 0, 7)},
		Milestones: []timeline.Milestone{
			{ID: "first", Title: "First", Offset: 0}, {ID: "office", Title: "Office", Offset: 12 * time.Minute},
		},
		Phases: []timeline.Phase{{ID: "esp", Name: "ESP", Start: t0, End: t0.Add(25 * time.Minute)}},
		Attention: []timeline.Attention{
			{Kind: timeline.AttentionRefused, Host: timeline.HostRef{Host: "z.example"}, Detail: "refused by the proxy", Flows: 1, Blocks: "office"},
		},
	}
	d := diff.Compare(diff.Side{Timeline: a, Hosts: map[string]int64{"a.example": 1, "both.example": 2}},
		diff.Side{Timeline: b, Hosts: map[string]int64{"both.example": 3, "b.example": 9}})

	var services []string
	for _, s := range d.Services {
		services = append(services, s.ID+":"+string(s.In)+":"+s.Delta.String())
	}
	// One-sided rows first (by bytes), then by how much the span changed.
	want := []string{"edge:b:0s", "intune:a:-2m0s", "office:both:20m0s", "teams:both:0s"}
	if !slices.Equal(services, want) {
		t.Errorf("services %v, want %v", services, want)
	}
	var ms []string
	for _, m := range d.Milestones {
		ms = append(ms, m.ID+":"+string(m.In)+":"+m.Moved.String())
	}
	// A milestone that fired twice is compared by its first firing.
	if want := []string{"gone:a:-3m0s", "office:both:10m0s", "first:both:0s"}; !slices.Equal(ms, want) {
		t.Errorf("milestones %v, want %v", ms, want)
	}
	if len(d.Phases) != 1 || d.Phases[0].Delta != 20*time.Minute {
		t.Errorf("phases %+v, want ESP 20m longer", d.Phases)
	}
	var hosts []string
	for _, h := range d.Hosts {
		hosts = append(hosts, h.Host+":"+string(h.In))
	}
	if want := []string{"b.example:b", "a.example:a"}; !slices.Equal(hosts, want) {
		t.Errorf("hosts %v, want %v", hosts, want)
	}
	var problems []string
	for _, p := range d.Problems {
		problems = append(problems, p.Host+":"+string(p.In))
	}
	// The refusal that kept a milestone from firing comes first; an
	// unknown host is not a problem.
	if want := []string{"z.example:b", "x.example:a"}; !slices.Equal(problems, want) {
		t.Errorf("problems %v, want %v", problems, want)
	}
}

package web

import (
	"encoding/json"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// Row is a flow as the page shows it: the fields of `pilotwire flows
// --json` (report.FlowJSON) and what the catalog and flow.Judge say of it.
type Row struct {
	fields      map[string]any
	Service     string
	ServiceName string
	Color       string
	Phase       string
	Noise       bool
	Outcome     string
	Reason      string
	pos         flow.Position
}

// MarshalJSON writes the row as one flat object.
func (r Row) MarshalJSON() ([]byte, error) {
	m := r.fields
	m["service"], m["service_name"], m["color"], m["noise"], m["outcome"] = r.Service, r.ServiceName, r.Color, r.Noise, r.Outcome
	if r.Phase != "" {
		m["phase"] = r.Phase
	}
	if r.Reason != "" {
		m["outcome_reason"] = r.Reason
	}
	return json.Marshal(m)
}

func (s *Server) row(f *flow.Flow) Row {
	if f.Bodies != nil {
		// Kept bodies stay off the page: rows are small and many
		// (pilotwire flows --bodies shows them).
		g := *f
		g.Bodies = nil
		f = &g
	}
	r := Row{fields: report.FlowJSON(f), pos: flow.PositionOf(f), Service: timeline.UnknownService.ID,
		ServiceName: timeline.UnknownService.Name, Color: timeline.UnknownService.Color}
	r.fields["start"] = f.Start.UTC().Format(time.RFC3339Nano)
	if m, ok := s.o.Catalog.Lookup(f.Host); ok {
		r.Service, r.ServiceName, r.Color, r.Phase, r.Noise = m.Service.ID, m.Service.Name, m.Service.Color, m.Entry.Phase, m.Service.Noise
	}
	out, why := flow.Judge(f)
	r.Outcome, r.Reason = out.String(), why
	return r
}

package catalog

// HostJSON is the JSON shape of one host looked up in the catalog (one
// line of `pilotwire endpoints lookup --json`): Host as the user gave it,
// the rest from the entry that matched, if any.
type HostJSON struct {
	Host        string `json:"host"`
	Known       bool   `json:"known"`
	Pattern     string `json:"pattern,omitempty"`
	Service     string `json:"service,omitempty"`
	ServiceName string `json:"service_name,omitempty"`
	Phase       string `json:"phase,omitempty"`
	Required    string `json:"required,omitempty"`
	Region      string `json:"region,omitempty"`
	Purpose     string `json:"purpose,omitempty"`
	Source      string `json:"source,omitempty"`
	// NoInspect says why TLS to the host must never be inspected.
	NoInspect string `json:"no_inspect,omitempty"`
	// NoBodies says why the bodies of requests to the host are never kept.
	NoBodies string `json:"no_bodies,omitempty"`
}

// LookupJSON looks name up (see Lookup) and says what it found as a
// HostJSON for given, the text the user gave (a URL, host:port, ...).
func (c *Catalog) LookupJSON(given, name string) HostJSON {
	m, ok := c.Lookup(name)
	var why string
	if e, marked := c.NoInspect(name); marked {
		why = e.NoInspect
	}
	var noBodies string
	if e, marked := c.NoBodies(name); marked {
		noBodies = e.NoBodies
	}
	if !ok {
		return HostJSON{Host: given, NoInspect: why, NoBodies: noBodies}
	}
	return HostJSON{NoInspect: why, NoBodies: noBodies, Host: given, Known: true, Pattern: m.Entry.Pattern, Service: m.Service.ID, ServiceName: m.Service.Name,
		Phase: m.Entry.Phase, Required: string(m.Entry.Required), Region: m.Region, Purpose: m.Entry.Purpose, Source: m.Entry.Source}
}

// ServiceJSON is the JSON shape of one service (`pilotwire endpoints
// services --json`): the service and how many entries belong to it.
type ServiceJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Color   string `json:"color"`
	Noise   bool   `json:"noise,omitempty"`
	Entries int    `json:"entries"`
}

// ServicesJSON lists the services, in the catalog's order, with their
// entry counts.
func (c *Catalog) ServicesJSON() []ServiceJSON {
	count := map[string]int{}
	for _, e := range c.Entries() {
		count[e.Service]++
	}
	var out []ServiceJSON
	for _, s := range c.Services() {
		out = append(out, ServiceJSON{ID: s.ID, Name: s.Name, Color: s.Color, Noise: s.Noise, Entries: count[s.ID]})
	}
	return out
}

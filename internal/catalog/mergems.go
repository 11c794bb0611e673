package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MSEndpointSet is one object of Microsoft's endpoint web service answer
// (https://endpoints.office.com/endpoints/WorldWide?ServiceAreas=MEM).
type MSEndpointSet struct {
	ID              int      `json:"id"`
	ServiceArea     string   `json:"serviceArea"`
	ServiceAreaName string   `json:"serviceAreaDisplayName"`
	URLs            []string `json:"urls"`
	TCPPorts        string   `json:"tcpPorts"`
	Required        bool     `json:"required"`
	Notes           string   `json:"notes"`
	Category        string   `json:"category"`
}

// MergeReport says what MergeMS found.
type MergeReport struct {
	Sets      int      // endpoint sets read in the chosen service areas
	URLs      int      // URLs in them
	Known     int      // URLs the catalog already has as a pattern
	Added     int      // entries written
	Skipped   []string // URLs that are not host patterns, with why
	Disagrees []string // known patterns whose required flag differs from Microsoft's
}

// maxMSFile bounds the endpoint web service answer (it is ~100 KiB today).
const maxMSFile = 64 << 20

// ReadMSEndpoints parses a saved answer of Microsoft's endpoint web
// service: a JSON list of endpoint sets. name is used in errors.
func ReadMSEndpoints(r io.Reader, name string) ([]MSEndpointSet, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxMSFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxMSFile {
		return nil, fmt.Errorf("%s: larger than %d bytes; not an endpoint web service answer", name, maxMSFile)
	}
	var sets []MSEndpointSet
	if err := json.Unmarshal(data, &sets); err != nil {
		off := int64(-1)
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			off = se.Offset
		case errors.As(err, &te):
			off = te.Offset
		}
		if off >= 0 {
			line := 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n"))
			return nil, fmt.Errorf("%s line %d (offset %d): not an endpoint web service answer (a JSON list of objects with id, serviceArea, urls, required): %w", name, line, off, err)
		}
		return nil, fmt.Errorf("%s: not an endpoint web service answer (a JSON list of objects with id, serviceArea, urls, required): %w", name, err)
	}
	for i, s := range sets {
		if s.ID == 0 || s.ServiceArea == "" {
			return nil, fmt.Errorf("%s: endpoint set %d has no id or serviceArea; not an endpoint web service answer", name, i+1)
		}
	}
	return sets, nil
}

// msServices are the services MergeMS gives hosts that no built-in
// wildcard covers, by Microsoft service area.
var msServices = map[string]Service{
	"mem":        {ID: "ms-mem", Name: "Microsoft Intune (Microsoft's list)", Color: "#a05d56"},
	"common":     {ID: "ms-common", Name: "Microsoft 365 common (Microsoft's list)", Color: "#6b8e23"},
	"exchange":   {ID: "ms-exchange", Name: "Exchange Online (Microsoft's list)", Color: "#4682b4"},
	"sharepoint": {ID: "ms-sharepoint", Name: "SharePoint Online (Microsoft's list)", Color: "#2e8b57"},
	"skype":      {ID: "ms-skype", Name: "Skype and Teams (Microsoft's list)", Color: "#7b68ee"},
}

// MergeMS compares Microsoft's endpoint sets in the given service areas
// (case-insensitive; none means MEM and Common) with c, and writes to w a
// user catalog file holding the host patterns c lacks. A new host under a
// catalog wildcard takes that entry's service and phase; others get a
// service per area and phase "other".
func (c *Catalog) MergeMS(w io.Writer, sets []MSEndpointSet, areas []string, title string) (MergeReport, error) {
	if len(areas) == 0 {
		areas = []string{"MEM", "Common"}
	}
	want := map[string]bool{}
	for _, a := range areas {
		want[strings.ToLower(a)] = true
	}
	have := map[string]Entry{}
	for _, e := range c.entries {
		have[e.Pattern] = e
	}
	type outEntry struct {
		Pattern  string `yaml:"pattern"`
		Service  string `yaml:"service"`
		Phase    string `yaml:"phase"`
		Required string `yaml:"required"`
		Purpose  string `yaml:"purpose"`
		Source   string `yaml:"source"`
		Example  string `yaml:"example,omitempty"`
	}
	type outService struct {
		ID    string `yaml:"id"`
		Name  string `yaml:"name"`
		Color string `yaml:"color"`
		Noise bool   `yaml:"noise,omitempty"`
	}
	var (
		rep      MergeReport
		entries  []*outEntry
		byPat    = map[string]*outEntry{}
		services []outService
		usedSvc  = map[string]bool{}
	)
	for _, s := range sets {
		area := strings.ToLower(s.ServiceArea)
		if !want[area] {
			continue
		}
		rep.Sets++
		req := RequiredNo
		if s.Required {
			req = RequiredYes
		}
		src := "MS-WS ID " + strconv.Itoa(s.ID) + " (" + s.ServiceArea + ")"
		for _, u := range s.URLs {
			rep.URLs++
			p := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(u)), ".")
			if r := validPattern(p); r != "" {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s (ID %d): %s", u, s.ID, r))
				continue
			}
			if e, ok := have[p]; ok {
				rep.Known++
				if e.Required != req && !(e.Required == RequiredYes && req == RequiredNo) {
					rep.Disagrees = append(rep.Disagrees, fmt.Sprintf("%s: catalog says required %s, Microsoft (ID %d) says %s", p, e.Required, s.ID, req))
				}
				continue
			}
			if o := byPat[p]; o != nil {
				o.Source += ", ID " + strconv.Itoa(s.ID)
				if req == RequiredYes {
					o.Required = string(RequiredYes)
				}
				continue
			}
			o := &outEntry{Pattern: p, Required: string(req), Source: src, Phase: "other", Purpose: msPurpose(s)}
			example := p
			if hasStar(p) {
				example = deriveExample(p)
				o.Example = example
			}
			if m, ok := c.Lookup(example); ok {
				o.Service, o.Phase = m.Entry.Service, m.Entry.Phase
			} else {
				svc, ok := msServices[area]
				if !ok {
					svc = Service{ID: "ms-" + area, Name: s.ServiceAreaName + " (Microsoft's list)", Color: fallbackColor("ms-" + area)}
					if !validID(svc.ID) {
						svc.ID = "ms-other"
					}
					if s.ServiceAreaName == "" {
						svc.Name = s.ServiceArea + " (Microsoft's list)"
					}
				}
				o.Service = svc.ID
				if !usedSvc[svc.ID] {
					usedSvc[svc.ID] = true
					services = append(services, outService(svc))
				}
			}
			byPat[p] = o
			entries = append(entries, o)
		}
	}
	rep.Added = len(entries)
	var b bytes.Buffer
	fmt.Fprintln(&b, "# pilotwire user catalog: host patterns from Microsoft's endpoint web service")
	fmt.Fprintln(&b, "# that the built-in catalog does not have. Review it, then use it with")
	fmt.Fprintln(&b, "#   pilotwire --catalog THIS-FILE ...   (or PILOTWIRE_CATALOG=THIS-FILE)")
	if title != "" {
		writeComment(&b, "# ", title)
	}
	fmt.Fprintf(&b, "# Service areas %s: %d endpoint sets, %d URLs, %d already in the catalog, %d added.\n",
		strings.Join(areas, ", "), rep.Sets, rep.URLs, rep.Known, rep.Added)
	for _, s := range rep.Skipped {
		fmt.Fprintf(&b, "# skipped: %s\n", s)
	}
	for _, d := range rep.Disagrees {
		fmt.Fprintf(&b, "# note: %s\n", d)
	}
	doc := struct {
		Services []outService `yaml:"services,omitempty"`
		Entries  []*outEntry  `yaml:"entries"`
	}{services, entries}
	if len(entries) == 0 {
		fmt.Fprintln(&b, "entries: []")
	} else {
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(doc); err != nil {
			return rep, fmt.Errorf("write user catalog: %w", err)
		}
		if err := enc.Close(); err != nil {
			return rep, fmt.Errorf("write user catalog: %w", err)
		}
	}
	// What we write must load.
	if len(entries) > 0 {
		if _, err := c.With("merge-ms output", b.Bytes()); err != nil {
			return rep, fmt.Errorf("merge-ms produced a file that does not load (a bug): %w", err)
		}
	}
	_, err := w.Write(b.Bytes())
	return rep, err
}

// msPurpose makes a one-line purpose from an endpoint set.
func msPurpose(s MSEndpointSet) string {
	name := s.ServiceAreaName
	if name == "" {
		name = s.ServiceArea
	}
	p := fmt.Sprintf("%s endpoint set %d", name, s.ID)
	if n := strings.Join(strings.Fields(s.Notes), " "); n != "" {
		if len(n) > 100 {
			n = strings.TrimSpace(n[:97]) + "..."
			for !utf8Valid(n) {
				n = n[:len(n)-4] + "..."
			}
		}
		p += ": " + n
	}
	return p
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

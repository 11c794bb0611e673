package report

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pilotwire/pilotwire/internal/diff"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// DiffFormats are the formats RenderDiff writes.
var DiffFormats = []string{"text", "markdown", "json", "html"}

// RenderDiff writes the comparison d in the named format.
func RenderDiff(w io.Writer, format string, d *diff.Diff, opt Options) error {
	switch format {
	case "text", "txt", "":
		return diffText(w, d)
	case "markdown", "md":
		return diffMarkdown(w, d)
	case "json":
		return diffJSON(w, d, opt)
	case "html":
		return diffHTML(w, d, opt)
	}
	return fmt.Errorf("diff: unknown format %q (want %s)", format, strings.Join(DiffFormats, ", "))
}

// sessionName names one side: "session 3 (autopilot-vm, 10.0.0.23)".
func sessionName(s diff.Summary) string {
	var who []string
	if s.Session.Device != "" {
		who = append(who, s.Session.Device)
	}
	if s.Session.Client != "" {
		who = append(who, s.Session.Client)
	}
	name := "session"
	if s.Session.Number > 0 {
		name = fmt.Sprintf("session %d", s.Session.Number)
	}
	if len(who) > 0 {
		name += " (" + strings.Join(who, ", ") + ")"
	}
	if s.Name != "" {
		name += " of " + s.Name
	}
	return safe(name)
}

// signed prints a difference of durations with its sign: "+12:45", "-00:30", "±00:00".
func signed(d time.Duration) string {
	switch {
	case d > 0:
		return "+" + timeline.FormatOffset(d)
	case d < 0:
		return timeline.FormatOffset(d)
	}
	return "±00:00"
}

// dur is a duration where a row may be absent.
func dur(d time.Duration, present bool) string {
	if !present {
		return "–"
	}
	return timeline.FormatOffset(d)
}

func inA(p diff.Presence) bool { return p != diff.OnlyB }
func inB(p diff.Presence) bool { return p != diff.OnlyA }

func onlyIn(p diff.Presence) string {
	switch p {
	case diff.OnlyA:
		return "only in A"
	case diff.OnlyB:
		return "only in B"
	}
	return ""
}

func rate(bps float64, present bool) string {
	if !present || bps == 0 {
		return "–"
	}
	return timeline.FormatRate(bps)
}

func bytesOr(n int64, present bool) string {
	if !present {
		return "–"
	}
	return timeline.FormatBytes(n)
}

// diffTables are the comparison's tables, the same for text and
// markdown: a title, the column names and the rows, each cell plain text.
type diffTable struct {
	title string
	head  []string
	rows  [][]string
	empty string
}

func diffTables(d *diff.Diff) []diffTable {
	a, b := d.A, d.B
	overall := diffTable{title: "Overall", head: []string{"", "A", "B", "Change"}, rows: [][]string{
		{"Duration", timeline.FormatOffset(a.Duration), timeline.FormatOffset(b.Duration), signed(b.Duration - a.Duration)},
		{"Flows", fmt.Sprint(a.Session.Flows), fmt.Sprint(b.Session.Flows), signedCount(b.Session.Flows - a.Session.Flows)},
		{"Bytes", timeline.FormatBytes(a.Session.Bytes), timeline.FormatBytes(b.Session.Bytes), signedBytes(b.Session.Bytes - a.Session.Bytes)},
	}}
	phases := diffTable{title: "Phases, biggest change first", head: []string{"Phase", "A", "B", "Change", ""},
		empty: "No provisioning phases in either session."}
	for _, p := range d.Phases {
		phases.rows = append(phases.rows, []string{p.Name, dur(p.A, inA(p.In)), dur(p.B, inB(p.In)), signed(p.Delta), onlyIn(p.In)})
	}
	services := diffTable{title: "Services, biggest change first", head: []string{"Service", "A busy", "B busy", "Change", "A bytes", "B bytes", "A content rate", "B content rate", ""}}
	for _, s := range d.Services {
		services.rows = append(services.rows, []string{s.Name, dur(s.A.Span, inA(s.In)), dur(s.B.Span, inB(s.In)), signed(s.Delta),
			bytesOr(s.A.Bytes, inA(s.In)), bytesOr(s.B.Bytes, inB(s.In)), rate(s.A.Throughput, inA(s.In)), rate(s.B.Throughput, inB(s.In)), onlyIn(s.In)})
	}
	milestones := diffTable{title: "Milestones, most moved first", head: []string{"Milestone", "A", "B", "Moved", ""},
		empty: "No milestones in either session."}
	for _, m := range d.Milestones {
		milestones.rows = append(milestones.rows, []string{m.Title, dur(m.A, inA(m.In)), dur(m.B, inB(m.In)), signed(m.Moved), onlyIn(m.In)})
	}
	hosts := diffTable{title: "Hosts in one session only", head: []string{"Host", "Service", "Bytes", ""},
		empty: "Both sessions talked to the same hosts."}
	for _, h := range d.Hosts {
		service := h.Service
		if service == "" {
			service = "–"
		}
		hosts.rows = append(hosts.rows, []string{safe(h.Host), service, timeline.FormatBytes(h.Bytes), onlyIn(h.In)})
	}
	problems := diffTable{title: "Refusals and failures in one session only", head: []string{"Host", "What", "Flows", "Kept from firing", ""},
		empty: "None: both sessions had the same refusals and failures."}
	for _, p := range d.Problems {
		what := kindName(p.Kind)
		switch {
		case p.Kind == timeline.AttentionRefused && p.Detail != "":
			what = safe(p.Detail) // "refused by the proxy: …"
		case p.Detail != "":
			what += ": " + safe(p.Detail)
		}
		blocks := p.BlocksTitle
		if blocks != "" && p.BlocksFired {
			blocks += " (fired anyway, on other flows)"
		}
		problems.rows = append(problems.rows, []string{safe(p.Host), what, fmt.Sprint(p.Flows), blocks, onlyIn(p.In)})
	}
	return []diffTable{overall, phases, services, milestones, hosts, problems}
}

// notProvisioning says which sides do not look like provisioning, whose
// phases then cannot be compared.
func notProvisioning(d *diff.Diff) []string {
	var out []string
	for _, s := range []struct {
		name string
		sum  diff.Summary
	}{{"A", d.A}, {"B", d.B}} {
		if !s.sum.Provisioning && s.sum.Session.Flows > 0 {
			out = append(out, s.name+" does not look like Autopilot provisioning: no Autopilot, enrollment or ESP traffic was seen.")
		}
	}
	return out
}

func signedCount(n int64) string {
	if n == 0 {
		return "±0"
	}
	return fmt.Sprintf("%+d", n)
}

func signedBytes(n int64) string {
	switch {
	case n > 0:
		return "+" + timeline.FormatBytes(n)
	case n < 0:
		return "-" + timeline.FormatBytes(-n)
	}
	return "±0 B"
}

func diffText(w io.Writer, d *diff.Diff) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "A: %s, %s\n", sessionName(d.A), clock(d.A.Session.Start))
	fmt.Fprintf(bw, "B: %s, %s\n", sessionName(d.B), clock(d.B.Session.Start))
	for _, n := range notProvisioning(d) {
		fmt.Fprintf(bw, "%s\n", n)
	}
	for _, t := range diffTables(d) {
		fmt.Fprintf(bw, "\n%s\n", t.title)
		if len(t.rows) == 0 {
			fmt.Fprintf(bw, "  %s\n", t.empty)
			continue
		}
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		for _, row := range append([][]string{t.head}, t.rows...) {
			fmt.Fprintf(tw, "  %s\n", strings.TrimRight(strings.Join(row, "\t"), "\t"))
		}
		tw.Flush()
	}
	return bw.Flush()
}

func diffMarkdown(w io.Writer, d *diff.Diff) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s compared with %s\n\n", mdText(sessionName(d.A)), mdText(sessionName(d.B)))
	fmt.Fprintf(bw, "- **A**: %s, started %s\n- **B**: %s, started %s\n", mdText(sessionName(d.A)), clock(d.A.Session.Start),
		mdText(sessionName(d.B)), clock(d.B.Session.Start))
	for _, n := range notProvisioning(d) {
		fmt.Fprintf(bw, "\n%s\n", mdText(n))
	}
	for _, t := range diffTables(d) {
		fmt.Fprintf(bw, "\n## %s\n\n", t.title)
		if len(t.rows) == 0 {
			fmt.Fprintf(bw, "%s\n", t.empty)
			continue
		}
		head := make([]string, len(t.head))
		for i, h := range t.head {
			head[i] = mdText(h)
		}
		fmt.Fprintf(bw, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(t.head)))
		for _, row := range t.rows {
			cells := make([]string, len(row))
			for i, c := range row {
				cells[i] = mdText(c)
			}
			fmt.Fprintf(bw, "| %s |\n", strings.Join(cells, " | "))
		}
	}
	return bw.Flush()
}

// The JSON of a comparison: docs/report-json.md, section "diff".
type diffDoc struct {
	SchemaVersion int               `json:"schema_version"`
	Generator     string            `json:"generator,omitempty"`
	A             diffSide          `json:"a"`
	B             diffSide          `json:"b"`
	Phases        []diffPhaseJSON   `json:"phases"`
	Services      []diffServiceJSON `json:"services"`
	Milestones    []diffMilestone   `json:"milestones"`
	Hosts         []diffHostJSON    `json:"hosts"`
	Problems      []diffProblemJSON `json:"problems"`
}

type diffSide struct {
	Source       string      `json:"source,omitempty"`
	Session      jsonSession `json:"session"`
	Provisioning bool        `json:"provisioning"`
}

type diffPhaseJSON struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	In           diff.Presence `json:"in"`
	ASeconds     float64       `json:"a_seconds"`
	BSeconds     float64       `json:"b_seconds"`
	DeltaSeconds float64       `json:"delta_seconds"`
}

type diffUse struct {
	Flows                    int64   `json:"flows"`
	Bytes                    int64   `json:"bytes"`
	BusySeconds              float64 `json:"busy_seconds"`
	ThroughputBytesPerSecond float64 `json:"throughput_bytes_per_second"`
}

type diffServiceJSON struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	In           diff.Presence `json:"in"`
	A            *diffUse      `json:"a,omitempty"`
	B            *diffUse      `json:"b,omitempty"`
	DeltaSeconds float64       `json:"delta_seconds"`
}

type diffMilestone struct {
	ID           string        `json:"id"`
	Title        string        `json:"title"`
	In           diff.Presence `json:"in"`
	ASeconds     *float64      `json:"a_offset_seconds,omitempty"`
	BSeconds     *float64      `json:"b_offset_seconds,omitempty"`
	MovedSeconds float64       `json:"moved_seconds"`
}

type diffHostJSON struct {
	Host    string        `json:"host"`
	Service string        `json:"service,omitempty"`
	In      diff.Presence `json:"in"`
	Bytes   int64         `json:"bytes"`
}

type diffProblemJSON struct {
	Kind   string        `json:"kind"`
	Host   string        `json:"host"`
	Detail string        `json:"detail,omitempty"`
	In     diff.Presence `json:"in"`
	Flows  int           `json:"flows"`
	Blocks string        `json:"blocks,omitempty"`
	// BlocksFired: the milestone fired anyway, on other flows.
	BlocksFired bool `json:"blocks_fired,omitempty"`
}

func diffJSON(w io.Writer, d *diff.Diff, opt Options) error {
	side := func(s diff.Summary) diffSide {
		return diffSide{Source: s.Name, Session: NewSessionJSON(s.Session), Provisioning: s.Provisioning}
	}
	doc := diffDoc{SchemaVersion: SchemaVersion, Generator: opt.Generator, A: side(d.A), B: side(d.B),
		Phases: []diffPhaseJSON{}, Services: []diffServiceJSON{}, Milestones: []diffMilestone{}, Hosts: []diffHostJSON{}, Problems: []diffProblemJSON{}}
	for _, p := range d.Phases {
		doc.Phases = append(doc.Phases, diffPhaseJSON{ID: p.ID, Name: p.Name, In: p.In, ASeconds: p.A.Seconds(), BSeconds: p.B.Seconds(), DeltaSeconds: p.Delta.Seconds()})
	}
	for _, s := range d.Services {
		u := func(x diff.ServiceUse, present bool) *diffUse {
			if !present {
				return nil
			}
			return &diffUse{Flows: x.Flows, Bytes: x.Bytes, BusySeconds: x.Span.Seconds(), ThroughputBytesPerSecond: x.Throughput}
		}
		doc.Services = append(doc.Services, diffServiceJSON{ID: s.ID, Name: s.Name, In: s.In, A: u(s.A, inA(s.In)), B: u(s.B, inB(s.In)), DeltaSeconds: s.Delta.Seconds()})
	}
	for _, m := range d.Milestones {
		row := diffMilestone{ID: m.ID, Title: m.Title, In: m.In, MovedSeconds: m.Moved.Seconds()}
		if inA(m.In) {
			row.ASeconds = new(m.A.Seconds())
		}
		if inB(m.In) {
			row.BSeconds = new(m.B.Seconds())
		}
		doc.Milestones = append(doc.Milestones, row)
	}
	for _, h := range d.Hosts {
		doc.Hosts = append(doc.Hosts, diffHostJSON{Host: h.Host, Service: h.Service, In: h.In, Bytes: h.Bytes})
	}
	for _, p := range d.Problems {
		doc.Problems = append(doc.Problems, diffProblemJSON{Kind: p.Kind, Host: p.Host, Detail: p.Detail, In: p.In, Flows: p.Flows, Blocks: p.Blocks, BlocksFired: p.BlocksFired})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

//go:embed diff.html.tmpl
var diffHTMLSource string

// diffTemplate shares the report's stylesheet and chart ("style", "swim").
var diffTemplate = template.Must(template.Must(htmlTemplate.Clone()).New("diff").Parse(diffHTMLSource))

type diffHTMLTable struct {
	Title, Empty string
	Head         []string
	Rows         [][]string
}

type diffHTMLView struct {
	Title, A, B, Generator string
	Notes                  []string
	SwimA, SwimB           *swim
	Tables                 []diffHTMLTable
}

// diffHTML writes the comparison as one self-contained page, like the
// report's: both sessions' charts on one time axis, then the tables.
func diffHTML(w io.Writer, d *diff.Diff, opt Options) error {
	v := diffHTMLView{Title: "Two sessions compared", A: sessionName(d.A) + ", " + clock(d.A.Session.Start),
		B: sessionName(d.B) + ", " + clock(d.B.Session.Start), Generator: opt.Generator, Notes: notProvisioning(d)}
	if ta, tb := d.A.Timeline, d.B.Timeline; ta != nil && tb != nil && len(ta.Milestones)+len(tb.Milestones) > 0 {
		loA, hiA := axis(ta)
		loB, hiB := axis(tb)
		lo, hi := math.Min(loA, loB), math.Max(hiA, hiB)
		a, b := swimlane(ta, lo, hi), swimlane(tb, lo, hi)
		a.ID, b.ID = "swimlane-a", "swimlane-b"
		v.SwimA, v.SwimB = &a, &b
	}
	for _, t := range diffTables(d) {
		v.Tables = append(v.Tables, diffHTMLTable{Title: t.title, Empty: t.empty, Head: t.head, Rows: t.rows})
	}
	return diffTemplate.ExecuteTemplate(w, "diff", v)
}

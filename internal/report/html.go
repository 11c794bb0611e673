package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/timeline"
)

//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Parse(htmlSource))

// HTML writes the report as one self-contained HTML page: inline CSS, inline
// SVG, no script and no external asset, so it works offline and can be
// mailed around. A Content-Security-Policy forbids scripts and fetches as a
// second line of defence; html/template escapes every value.
func HTML(w io.Writer, tl *timeline.Timeline, opt Options) error {
	return htmlTemplate.Execute(w, view(tl, opt))
}

var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// color is c when it is a plain #rrggbb colour, else a neutral grey: a
// user catalog's colour ends up in SVG attributes and CSS.
func color(c string) string {
	if hexColor.MatchString(c) {
		return strings.ToLower(c)
	}
	return "#8a8a8a"
}

type htmlHost struct{ Name, What, Purpose, URL string }

type htmlMilestone struct {
	Num           int
	Offset, Title string
	Text, Why     string
	Likely        bool
	Hosts         []htmlHost
	More          int
	FlowIDs       string
	Flows         int
	Color         string
}

type htmlPhase struct {
	Name, About, Start, End, Duration string
	Flows                             int64
	Bytes                             string
	Mostly                            []htmlShare
}

type htmlShare struct{ Name, Color, Bytes, Active string }

type htmlService struct {
	Name, ID, Color, First, Last, Bytes, Content string
	Flows                                        int64
	Hosts                                        string
}

type htmlAttention struct {
	Offset, Kind, KindID, Host, What, Detail, Impact, FlowIDs string
	Flows                                                     int
}

type tick struct {
	X     float64
	Label string
}

type svgRect struct {
	X, W  float64
	Title string
}

type lane struct {
	ID, Name, Color, Title string
	Y, TextY, SwatchY      float64
	SpanY, SpanH           float64
	Spans                  []svgRect
}

type marker struct {
	Num                 int
	X, Y, LabelY        float64
	LineTop, LineBottom float64
	Title               string
	Likely              bool
}

type phaseBand struct {
	X, W, LabelX float64
	Name, Title  string
	Odd          bool
}

type swim struct {
	Width, Height, PlotX0, PlotX1, LaneH float64
	AxisY, LanesY, MarkerY, PhaseY       float64
	PhaseLabelY, TickLabelY, PhaseH      float64
	Ticks                                []tick
	Lanes                                []lane
	Markers                              []marker
	Phases                               []phaseBand
}

type bar struct {
	Name, Color, Label string
	Y, W, TextY        float64
}

type bars struct {
	Width, Height, X0 float64
	Bars              []bar
}

type htmlView struct {
	Title, Summary, T0Note, Source, Generator string
	Verdict                                   string // see verdict
	Milestones                                []htmlMilestone
	Phases                                    []htmlPhase
	Services                                  []htmlService
	Attention                                 []htmlAttention
	Swim                                      swim
	Bytes                                     bars
	Empty                                     bool
}

func ids(v []int64, total int) string {
	var b strings.Builder
	for i, id := range v {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	if total > len(v) {
		fmt.Fprintf(&b, " … (%d in all)", total)
	}
	return b.String()
}

func view(tl *timeline.Timeline, opt Options) htmlView {
	v := htmlView{Title: safe(title(tl)), Summary: summary(tl), T0Note: t0Note(tl), Verdict: verdict(tl), Source: safe(opt.Source),
		Generator: opt.Generator, Empty: len(tl.Milestones) == 0}
	colors := map[string]string{}
	for _, b := range tl.Services {
		colors[b.Service.ID] = color(b.Service.Color)
	}
	for i, m := range tl.Milestones {
		hm := htmlMilestone{Num: i + 1, Offset: timeline.FormatOffset(m.Offset), Title: m.Title, Text: safe(m.Text), Why: safe(m.Why),
			Likely: m.Likely, FlowIDs: ids(m.FlowIDs, m.Flows), Flows: m.Flows, Color: "#555555"}
		for j, h := range m.Hosts {
			if j == 0 {
				hm.Color = colors[h.Service]
			}
			name := h.Host
			if h.PlainHTTP {
				name = "http://" + name
			}
			hm.Hosts = append(hm.Hosts, htmlHost{Name: safe(name), What: what(h), Purpose: h.Purpose, URL: safe(h.URL)})
		}
		v.Milestones = append(v.Milestones, hm)
	}
	for _, p := range tl.Phases {
		hp := htmlPhase{Name: p.Name, About: p.About, Start: timeline.FormatOffset(p.StartOffset),
			End: timeline.FormatOffset(p.EndOffset), Duration: timeline.FormatOffset(p.Duration()), Flows: p.Flows,
			Bytes: timeline.FormatBytes(p.Bytes)}
		for i, s := range p.Services {
			if i == 3 {
				break
			}
			hp.Mostly = append(hp.Mostly, htmlShare{Name: s.Service.Name, Color: color(s.Service.Color),
				Bytes: timeline.FormatBytes(s.Bytes), Active: humanActive(s.Active)})
		}
		v.Phases = append(v.Phases, hp)
	}
	for _, b := range tl.Services {
		content := "–"
		if b.Transfers > 0 {
			content = fmt.Sprintf("%d at %s", b.Transfers, timeline.FormatRate(b.Throughput))
		}
		var hosts []string
		for _, h := range b.Hosts {
			hosts = append(hosts, safe(h.Host))
		}
		hs := strings.Join(hosts, ", ")
		if b.HostCount > len(hosts) {
			hs += fmt.Sprintf(" and %d more", b.HostCount-len(hosts))
		}
		v.Services = append(v.Services, htmlService{Name: b.Service.Name, ID: b.Service.ID, Color: color(b.Service.Color),
			First: timeline.FormatOffset(b.First.Sub(tl.T0)), Last: timeline.FormatOffset(b.Last.Sub(tl.T0)),
			Bytes: timeline.FormatBytes(b.Bytes()), Content: content, Flows: b.Flows, Hosts: hs})
	}
	for _, a := range tl.Attention {
		v.Attention = append(v.Attention, htmlAttention{Offset: timeline.FormatOffset(a.Offset), Kind: kindName(a.Kind),
			KindID: a.Kind, Host: safe(a.Host.Host), What: what(a.Host), Detail: safe(detail(a)), Impact: impact(a),
			FlowIDs: ids(a.FlowIDs, a.Flows), Flows: a.Flows})
	}
	if !v.Empty {
		v.Swim = swimlane(tl)
		v.Bytes = byteBars(tl)
	}
	return v
}

// swimlane lays out the SVG: one lane per service, phases shaded behind,
// milestone markers on top, a time axis below.
func swimlane(tl *timeline.Timeline) swim {
	const (
		width  = 1200.0
		labelW = 250.0
		right  = 20.0
		laneH  = 22.0
		phaseH = 20.0
	)
	s := swim{Width: width, PlotX0: labelW, PlotX1: width - right, LaneH: laneH}
	lo := math.Min(0, tl.Session.Start.Sub(tl.T0).Seconds())
	hi := tl.Session.End.Sub(tl.T0).Seconds()
	if hi <= lo {
		hi = lo + 1
	}
	x := func(sec float64) float64 { return s.PlotX0 + (sec-lo)/(hi-lo)*(s.PlotX1-s.PlotX0) }
	s.MarkerY = 4
	rows, nrows := markerRows(tl, x)
	markerH := s.MarkerY + 8 + float64(nrows)*15
	top := markerH + phaseH
	s.LanesY = top
	s.PhaseY = markerH
	s.PhaseLabelY = markerH + 14
	for i, b := range tl.Services {
		y := top + float64(i)*laneH
		l := lane{ID: b.Service.ID, Name: fitLabel(b.Service.Name, labelW-30), Color: color(b.Service.Color), Y: y,
			TextY: y + laneH/2 + 4, SwatchY: y + laneH/2 - 5, SpanY: y + 4, SpanH: laneH - 8,
			Title: fmt.Sprintf("%s: %d flows, %s, %s to %s", b.Service.Name, b.Flows, timeline.FormatBytes(b.Bytes()),
				timeline.FormatOffset(b.First.Sub(tl.T0)), timeline.FormatOffset(b.Last.Sub(tl.T0)))}
		for _, sp := range b.Activity {
			x0, x1 := x(sp.Start.Seconds()), x(sp.End.Seconds())
			l.Spans = append(l.Spans, svgRect{X: x0, W: math.Max(x1-x0, 2),
				Title: fmt.Sprintf("%s %s–%s", b.Service.Name, timeline.FormatOffset(sp.Start), timeline.FormatOffset(sp.End))})
		}
		s.Lanes = append(s.Lanes, l)
	}
	bottom := top + float64(len(tl.Services))*laneH
	s.AxisY = bottom
	s.TickLabelY = bottom + 16
	s.PhaseH = bottom - s.PhaseY
	s.Height = bottom + 26
	for i, p := range tl.Phases {
		x0, x1 := x(p.StartOffset.Seconds()), x(p.EndOffset.Seconds())
		s.Phases = append(s.Phases, phaseBand{X: x0, W: math.Max(x1-x0, 0), LabelX: x0 + 3, Name: fitLabel(p.Name, x1-x0),
			Title: fmt.Sprintf("%s %s–%s", p.Name, timeline.FormatOffset(p.StartOffset), timeline.FormatOffset(p.EndOffset)),
			Odd:   i%2 == 1})
	}
	step := tickStep(hi - lo)
	for t := math.Ceil(lo/step) * step; t <= hi; t += step {
		s.Ticks = append(s.Ticks, tick{X: x(t), Label: timeline.FormatOffset(time.Duration(t) * time.Second)})
	}
	for i, m := range tl.Milestones {
		mx, row := x(m.Offset.Seconds()), rows[i]
		y := s.MarkerY + 8 + float64(row)*15
		s.Markers = append(s.Markers, marker{Num: i + 1, X: mx, Y: y, LabelY: y + 4, LineTop: y + 7, LineBottom: bottom,
			Title: timeline.FormatOffset(m.Offset) + " " + m.Title, Likely: m.Likely})
	}
	return s
}

// markerRows puts each milestone marker on the first row where it does not
// overlap the previous marker of that row; when all six rows are crowded it
// takes the row free the longest. It returns the rows and how many are used.
func markerRows(tl *timeline.Timeline, x func(float64) float64) ([]int, int) {
	lastX := make([]float64, 6)
	for r := range lastX {
		lastX[r] = math.Inf(-1)
	}
	rows := make([]int, len(tl.Milestones))
	used := 0
	for i, m := range tl.Milestones {
		mx := x(m.Offset.Seconds())
		row := -1
		for r := range lastX {
			if mx-lastX[r] >= 16 {
				row = r
				break
			}
		}
		if row < 0 {
			row = 0
			for r := range lastX {
				if lastX[r] < lastX[row] {
					row = r
				}
			}
		}
		lastX[row] = mx
		rows[i] = row
		used = max(used, row+1)
	}
	return rows, used
}

// fitLabel shortens a phase name to what fits in w pixels.
func fitLabel(name string, w float64) string {
	n := int(w / 6.5)
	r := []rune(name)
	switch {
	case n >= len(r):
		return name
	case n < 4:
		return ""
	}
	return string(r[:n-1]) + "…"
}

// tickStep picks a tick interval (seconds) that gives at most ~12 ticks.
func tickStep(span float64) float64 {
	for _, m := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720, 1440} {
		if span/(m*60) <= 12 {
			return m * 60
		}
	}
	return math.Ceil(span/12/86400) * 86400
}

// byteBars lays out the bytes-per-service chart, largest first.
func byteBars(tl *timeline.Timeline) bars {
	const width, x0, barH = 1200.0, 250.0, 18.0
	bs := make([]timeline.Band, len(tl.Services))
	copy(bs, tl.Services)
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].Bytes() > bs[j].Bytes() })
	var most int64 = 1
	for _, b := range bs {
		most = max(most, b.Bytes())
	}
	out := bars{Width: width, X0: x0, Height: float64(len(bs))*(barH+4) + 4}
	for i, b := range bs {
		y := 4 + float64(i)*(barH+4)
		w := float64(b.Bytes()) / float64(most) * (width - x0 - 120)
		out.Bars = append(out.Bars, bar{Name: b.Service.Name, Color: color(b.Service.Color), Y: y, W: math.Max(w, 1),
			TextY: y + barH/2 + 4, Label: timeline.FormatBytes(b.Bytes())})
	}
	return out
}

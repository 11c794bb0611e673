package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

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

// htmlHost is a host as the tables show it: its name in labels, so that
// it wraps only after a dot (see hostName).
type htmlHost struct {
	Name          []hostLabel
	Plain         bool // seen as plain HTTP: shown with http://
	What, Purpose string
	URL           string
}

// hostLabel is one label of a host name with the dot after it. Whole
// labels are kept on one line; a "label" longer than DNS allows (63
// bytes) is not a host name's and may break anywhere, so that hostile
// input cannot push the page wider than the window.
type hostLabel struct {
	Text  string
	Whole bool
}

// hostName cuts a host name after each dot.
func hostName(h string) []hostLabel {
	var out []hostLabel
	for h != "" {
		i := strings.IndexByte(h, '.') + 1
		if i == 0 {
			i = len(h)
		}
		out = append(out, hostLabel{Text: h[:i], Whole: len(strings.TrimSuffix(h[:i], ".")) <= 63})
		h = h[i:]
	}
	return out
}

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
	Hosts                                        [][]hostLabel
	MoreHosts                                    int
}

type htmlAttention struct {
	Offset, Kind, KindID, What, Detail, Impact, FlowIDs string
	Host                                                []hostLabel
	Flows                                               int
}

// The swimlane is an HTML grid: a column of lane names (HTML text, which
// wraps rather than being cut) beside a column of SVG rows. The SVGs have
// no viewBox: their x coordinates are percentages of the plot column's
// width and their text keeps its CSS size at any window width. What
// cannot scale (marker rows, label positions) is laid out for the
// narrowest plot the stylesheet allows, minPlotW, which keeps it apart at
// every wider width too.
const (
	minPlotW  = 480.0 // px; the stylesheet's .swim min-width keeps the plot column at least this wide
	widePlotW = 740.0 // px; the plot is at least this wide in a window of 1200 px or more
	wideW     = 3000.0
	tickFont  = 11.0                // px, svg .muted in the stylesheet
	inset     = 10 / minPlotW * 100 // % kept free at each end, so markers at the ends stay whole
	laneRow0  = 3                   // grid row of the first lane: markers and phase names come first
)

type tick struct {
	X      float64 // %
	Anchor string
	Label  string
	T      float64 // seconds from T0
	Minor  bool    // labelled only in a wide window
}

type svgRect struct {
	X, W  float64 // %
	Title string
}

type lane struct {
	ID, Name, Color, Title string
	Row                    int
	Spans                  []svgRect
}

type marker struct {
	Num    int
	X      float64 // %
	Rows   rowPair
	Title  string
	Likely bool
}

// rowPair is a row (or a count of rows) of markers or phase names in a
// narrow window and in a wide one (1200 px or more): the stylesheet picks
// one, so a wide chart is not as tall as a narrow one needs to be.
type rowPair struct{ Narrow, Wide int }

type phaseBand struct {
	X, W, LabelX float64 // %
	Rows         rowPair
	Anchor       string // text-anchor of the name: it starts at the band or ends at its end
	Name, Title  string
	Odd          bool
}

type swim struct {
	ID                    string  // the chart's element id
	MarkerRows, PhaseRows rowPair // how many rows of markers and of phase names
	AxisRow               int     // grid row of the time axis
	Ticks                 []tick
	Lanes                 []lane
	Markers               []marker
	Phases                []phaseBand
}

type bar struct {
	ID, Name, Color, Label string
	Frac                   float64 // of the widest bar
}

type bars struct {
	Bars []bar
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
			hm.Hosts = append(hm.Hosts, htmlHost{Name: hostName(safe(h.Host)), Plain: h.PlainHTTP, What: what(h),
				Purpose: h.Purpose, URL: safe(h.URL)})
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
		hs := htmlService{Name: b.Service.Name, ID: b.Service.ID, Color: color(b.Service.Color),
			First: timeline.FormatOffset(b.First.Sub(tl.T0)), Last: timeline.FormatOffset(b.Last.Sub(tl.T0)),
			Bytes: timeline.FormatBytes(b.Bytes()), Content: content, Flows: b.Flows, MoreHosts: max(b.HostCount-len(b.Hosts), 0)}
		for _, h := range b.Hosts {
			hs.Hosts = append(hs.Hosts, hostName(safe(h.Host)))
		}
		v.Services = append(v.Services, hs)
	}
	for _, a := range tl.Attention {
		v.Attention = append(v.Attention, htmlAttention{Offset: timeline.FormatOffset(a.Offset), Kind: kindName(a.Kind),
			KindID: a.Kind, Host: hostName(safe(a.Host.Host)), What: what(a.Host), Detail: safe(detail(a)), Impact: impact(a),
			FlowIDs: ids(a.FlowIDs, a.Flows), Flows: a.Flows})
	}
	if !v.Empty {
		lo, hi := axis(tl)
		v.Swim = swimlane(tl, lo, hi)
		v.Swim.ID = "swimlane"
		v.Bytes = byteBars(tl)
	}
	return v
}

// axis is the time axis of tl's chart, in seconds from T0: from T0 (or
// the session's start, when before) to the session's end.
func axis(tl *timeline.Timeline) (lo, hi float64) {
	lo = math.Min(0, tl.Session.Start.Sub(tl.T0).Seconds())
	hi = tl.Session.End.Sub(tl.T0).Seconds()
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

// swimlane lays out the chart of services over time: one lane per service,
// phases shaded behind with their names above, milestone markers on top,
// a time axis below, from lo to hi seconds after T0 (two sessions drawn on
// one axis share lo and hi). Positions along time are percentages (see
// minPlotW).
func swimlane(tl *timeline.Timeline, lo, hi float64) swim {
	const phaseFont = 11.0 // px, svg .muted in the stylesheet
	x := func(sec float64) float64 { return pct(inset + (sec-lo)/(hi-lo)*(100-2*inset)) }
	var s swim

	marks := make([]extent, len(tl.Milestones))
	for i, m := range tl.Milestones {
		marks[i] = extent{P: x(m.Offset.Seconds()), L: -8.5, R: 8.5}
	}
	rows, n := stackBoth(marks)
	s.MarkerRows = n
	for i, m := range tl.Milestones {
		s.Markers = append(s.Markers, marker{Num: i + 1, X: marks[i].P, Rows: rows[i],
			Title: timeline.FormatOffset(m.Offset) + " " + m.Title, Likely: m.Likely})
	}

	// A phase's name starts at its band when it fits in the plot from
	// there, else it ends at the band's end; names that would run into
	// each other go on rows of their own. A name wider than its band
	// runs on over the next bands: it is never cut or dropped.
	names := make([]extent, len(tl.Phases))
	anchors := make([]string, len(tl.Phases))
	for i, p := range tl.Phases {
		x0, x1 := x(p.StartOffset.Seconds()), x(p.EndOffset.Seconds())
		w := textWidth(p.Name, phaseFont)
		names[i], anchors[i] = extent{P: x0, L: 3, R: 3 + w}, "start"
		if x0/100*minPlotW+3+w > minPlotW && x1/100*minPlotW-3-w >= 0 {
			names[i], anchors[i] = extent{P: x1, L: -3 - w, R: -3}, "end"
		}
	}
	rows, n = stackBoth(names)
	s.PhaseRows = n
	for i, p := range tl.Phases {
		x0, x1 := x(p.StartOffset.Seconds()), x(p.EndOffset.Seconds())
		lx := x0
		if anchors[i] == "end" {
			lx = x1
		}
		s.Phases = append(s.Phases, phaseBand{X: x0, W: pct(math.Max(x1-x0, 0)), LabelX: lx, Anchor: anchors[i],
			Rows: rows[i], Name: p.Name, Odd: i%2 == 1,
			Title: fmt.Sprintf("%s %s–%s", p.Name, timeline.FormatOffset(p.StartOffset), timeline.FormatOffset(p.EndOffset))})
	}

	for i, b := range tl.Services {
		l := lane{ID: b.Service.ID, Name: b.Service.Name, Color: color(b.Service.Color), Row: laneRow0 + i,
			Title: fmt.Sprintf("%s: %d flows, %s, %s to %s", b.Service.Name, b.Flows, timeline.FormatBytes(b.Bytes()),
				timeline.FormatOffset(b.First.Sub(tl.T0)), timeline.FormatOffset(b.Last.Sub(tl.T0)))}
		for _, sp := range b.Activity {
			x0, x1 := x(sp.Start.Seconds()), x(sp.End.Seconds())
			l.Spans = append(l.Spans, svgRect{X: x0, W: pct(x1 - x0),
				Title: fmt.Sprintf("%s %s–%s", b.Service.Name, timeline.FormatOffset(sp.Start), timeline.FormatOffset(sp.End))})
		}
		s.Lanes = append(s.Lanes, l)
	}
	s.AxisRow = laneRow0 + len(tl.Services)

	s.Ticks = axisTicks(lo, hi, x)
	return s
}

// pct rounds a percentage to what a pixel can show, so the page does not
// carry float noise.
func pct(v float64) float64 { return math.Round(v*1000) / 1000 }

// extent is a thing drawn along the plot: at plot width W it covers
// [P/100·W + L, P/100·W + R] px.
type extent struct{ P, L, R float64 }

// apartFrom reports whether a and b keep apart at every plot width from
// narrowest to wideW: the gap between them changes linearly with the
// width, so apart at both ends is apart everywhere between.
func apartFrom(a, b extent, narrowest float64) bool {
	for _, w := range []float64{narrowest, wideW} {
		if a.P/100*w+a.R > b.P/100*w+b.L && b.P/100*w+b.R > a.P/100*w+a.L {
			return false
		}
	}
	return true
}

// maxRows caps the rows of markers or names: past it, a crowd overlaps on
// the row free the longest rather than growing the chart without end (the
// tables below list everything).
const maxRows = 12

// stackBoth stacks items for a narrow and for a wide window.
func stackBoth(items []extent) ([]rowPair, rowPair) {
	narrow, n := stack(items, minPlotW)
	wide, w := stack(items, widePlotW)
	out := make([]rowPair, len(items))
	for i := range out {
		out[i] = rowPair{narrow[i], wide[i]}
	}
	return out, rowPair{n, w}
}

// stack puts each extent on the first row where it is apart from all
// others there at plot widths from narrowest up, and returns the rows and
// how many are used.
func stack(items []extent, narrowest float64) ([]int, int) {
	var rows [][]extent
	out := make([]int, len(items))
	for i, it := range items {
		r := slices.IndexFunc(rows, func(row []extent) bool {
			return !slices.ContainsFunc(row, func(o extent) bool { return !apartFrom(it, o, narrowest) })
		})
		switch {
		case r >= 0:
		case len(rows) < maxRows:
			r = len(rows)
			rows = append(rows, nil)
		default:
			r = 0
			for j := range rows {
				if last(rows[j]) < last(rows[r]) {
					r = j
				}
			}
		}
		rows[r] = append(rows[r], it)
		out[i] = r
	}
	return out, len(rows)
}

// last is where a row's items end at the narrowest plot.
func last(row []extent) float64 {
	end := math.Inf(-1)
	for _, e := range row {
		end = math.Max(end, e.P/100*minPlotW+e.R)
	}
	return end
}

// textWidth estimates, from above, how wide s is in px when set at size
// px in a sans-serif face: the per-character widths are a little over
// those of DejaVu Sans, the widest common one, so that names laid out
// apart stay apart in whatever face the browser picks.
func textWidth(s string, size float64) float64 {
	em := 0.0
	for _, r := range s {
		switch {
		case r >= 0x1100:
			em += 1.05 // wide scripts (CJK, Hangul) and symbols
		case r > 0x7f:
			em += 0.85
		case strings.ContainsRune(" .,:;'|!()[]ijlft", r):
			em += 0.42
		case strings.ContainsRune("mwMW@%", r):
			em += 1.02
		case unicode.IsUpper(r):
			em += 0.82
		default:
			em += 0.68
		}
	}
	return em * size
}

// tickSteps are the intervals the time axis may use, in seconds.
var tickSteps = []float64{10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400}

// axisTicks picks the time axis's ticks: every fine step when the window
// is wide (the stylesheet shows minor labels from 1200 px, where the plot
// is at least widePlotW), every major step (a multiple of the fine one)
// at any width, each as often as keeps the labels apart.
func axisTicks(lo, hi float64, x func(float64) float64) []tick {
	ticks := func(step float64) []tick {
		var out []tick
		for t := math.Ceil(lo/step) * step; t <= hi && len(out) <= 200; t += step {
			lb := timeline.FormatOffset(time.Duration(t) * time.Second)
			c, w := x(t)/100*minPlotW, textWidth(lb, tickFont)
			anchor := "middle"
			switch {
			case c-w/2 < 0:
				anchor = "start"
			case c+w/2 > minPlotW:
				anchor = "end"
			}
			out = append(out, tick{X: x(t), Anchor: anchor, Label: lb, T: t})
		}
		return out
	}
	fits := func(ts []tick, narrowest float64) bool {
		if len(ts) > 100 {
			return false
		}
		for i := 1; i < len(ts); i++ {
			if !apartFrom(ts[i-1].extent(), ts[i].extent(), narrowest) {
				return false
			}
		}
		return true
	}
	fine := tickSteps[len(tickSteps)-1]
	for _, st := range tickSteps {
		if fits(ticks(st), widePlotW) {
			fine = st
			break
		}
	}
	major := fine
	for k := 1.0; k <= 1000; k++ {
		if fits(ticks(k*fine), minPlotW) {
			major = k * fine
			break
		}
	}
	out := ticks(fine)
	for i := range out {
		out[i].Minor = math.Mod(out[i].T, major) != 0
	}
	return out
}

// extent is where a tick's label is drawn, with a little room around it.
func (t tick) extent() extent {
	w := textWidth(t.Label, tickFont)
	switch t.Anchor {
	case "start":
		return extent{P: t.X, L: -4, R: w + 4}
	case "end":
		return extent{P: t.X, L: -w - 4, R: 4}
	}
	return extent{P: t.X, L: -w/2 - 4, R: w/2 + 4}
}

// byteBars lays out the bytes-per-service chart, largest first.
func byteBars(tl *timeline.Timeline) bars {
	bs := make([]timeline.Band, len(tl.Services))
	copy(bs, tl.Services)
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].Bytes() > bs[j].Bytes() })
	var most int64 = 1
	for _, b := range bs {
		most = max(most, b.Bytes())
	}
	var out bars
	for _, b := range bs {
		out.Bars = append(out.Bars, bar{ID: b.Service.ID, Name: b.Service.Name, Color: color(b.Service.Color),
			Frac: math.Round(float64(b.Bytes())/float64(most)*1e4) / 1e4, Label: timeline.FormatBytes(b.Bytes())})
	}
	return out
}

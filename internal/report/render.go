package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/timeline"
)

// Formats are the output formats, in the order --help lists them.
var Formats = []string{"text", "markdown", "json", "html"}

// Options describe the report around the timeline.
type Options struct {
	// Generator names the program, e.g. "pilotwire v1.2.0".
	Generator string
	// Source says where the flows came from (a store path, a capture
	// file).
	Source string
	// Width is the text report's width in columns; zero means 100.
	Width int
}

// Render writes tl in the named format.
func Render(w io.Writer, format string, tl *timeline.Timeline, opt Options) error {
	switch format {
	case "text", "txt", "":
		return Text(w, tl, opt)
	case "markdown", "md":
		return Markdown(w, tl, opt)
	case "json":
		return JSON(w, tl, opt)
	case "html":
		return HTML(w, tl, opt)
	}
	return fmt.Errorf("report: unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

// clock prints an absolute time.
func clock(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST") }

// t0Note says where offsets count from.
func t0Note(tl *timeline.Timeline) string {
	d := tl.Session.Start.Sub(tl.T0)
	switch {
	case d == 0:
		return "offsets count from the session's first flow"
	case d > 0:
		return fmt.Sprintf("offsets count from %s, %s before the first flow", clock(tl.T0), timeline.FormatOffset(d))
	default:
		return fmt.Sprintf("offsets count from %s, %s after the first flow", clock(tl.T0), timeline.FormatOffset(-d))
	}
}

// title is the report's heading.
func title(tl *timeline.Timeline) string {
	s := tl.Session
	who := s.Client
	if who == "" {
		who = "unknown client"
	}
	if s.Device != "" {
		who = s.Device + " (" + s.Client + ")"
	}
	if s.Proxy != "" {
		who += " via proxy " + s.Proxy
	}
	head := "Provisioning timeline"
	if s.Number > 0 {
		head += fmt.Sprintf(", session %d", s.Number)
	}
	if s.Name != "" {
		head += " \"" + s.Name + "\""
	}
	return head + ": " + who
}

// verdict says plainly when a session does not look like provisioning (no
// Autopilot, enrollment or ESP milestone fired), and is "" otherwise and
// for an empty session.
func verdict(tl *timeline.Timeline) string {
	if tl.Provisioning || tl.Session.Flows == 0 {
		return ""
	}
	return "This session does not look like Autopilot provisioning: no Autopilot, enrollment or ESP traffic was seen."
}

// summary is one line on the session.
func summary(tl *timeline.Timeline) string {
	s := tl.Session
	return fmt.Sprintf("%s to %s: %s, %d flows, %s", clock(s.Start), s.End.Format("15:04:05 MST"),
		timeline.FormatOffset(s.Duration()), s.Flows, timeline.FormatBytes(s.Bytes))
}

// what says what a host is, for the seed-like list.
func what(h timeline.HostRef) string {
	if !h.Known {
		return "not in the catalog"
	}
	return h.ServiceName
}

// hostGroup is hosts that share a description.
type hostGroup struct {
	hosts []string
	what  string
}

// groupHosts folds hosts with the same description together, in order:
// "login.microsoftonline.com, aadcdn.msauth.net (Entra ID sign-in and
// join)". Plain-HTTP hosts are written as http://host, since their URLs
// were visible.
func groupHosts(hs []timeline.HostRef, limit int) ([]hostGroup, int) {
	var out []hostGroup
	more := 0
	for i, h := range hs {
		if i >= limit {
			more = len(hs) - limit
			break
		}
		name := h.Host
		if h.PlainHTTP {
			name = "http://" + name
		}
		w := what(h)
		if n := len(out); n > 0 && out[n-1].what == w {
			out[n-1].hosts = append(out[n-1].hosts, name)
			continue
		}
		out = append(out, hostGroup{hosts: []string{name}, what: w})
	}
	return out, more
}

// dominated says what dominated a phase: the top services by bytes, with
// their active time.
func dominated(p timeline.Phase, n int) string {
	var parts []string
	for i, s := range p.Services {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s active)", s.Service.Name, timeline.FormatBytes(s.Bytes),
			humanActive(s.Active)))
	}
	return strings.Join(parts, ", ")
}

// humanActive prints an active time: "<1 s", "42 s", "03:18".
func humanActive(d time.Duration) string {
	switch {
	case d < time.Second:
		return "<1 s"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	}
	return timeline.FormatOffset(d)
}

// hurts says which phase a problem would hurt.
func hurts(a timeline.Attention) string {
	switch {
	case a.Kind == timeline.AttentionUnknownHost:
		return ""
	case a.HurtsName != "":
		return "would hurt " + a.HurtsName
	case a.Host.Known:
		return "provisioning does not depend on it"
	}
	return ""
}

// failure reports whether an attention item is about refused or failed
// attempts (rather than an unknown host, a mismatched SNI, slow content).
func failure(a timeline.Attention) bool {
	return a.Kind == timeline.AttentionRefused || a.Kind == timeline.AttentionFailed
}

// detail is an attention item's detail. For refusals and failures it says
// how many attempts there were and when: "name not resolved, 3 attempts
// from 02:01 to 02:05".
func detail(a timeline.Attention) string {
	if !failure(a) {
		return a.Detail
	}
	s := plural(int64(a.Flows), "attempt", "attempts")
	switch {
	case a.Flows == 1:
		s += " at " + timeline.FormatOffset(a.Offset)
	case timeline.FormatOffset(a.LastOffset) == timeline.FormatOffset(a.Offset):
		s += " at " + timeline.FormatOffset(a.Offset)
	default:
		s += " from " + timeline.FormatOffset(a.Offset) + " to " + timeline.FormatOffset(a.LastOffset)
	}
	if a.Detail == "" {
		return s
	}
	return a.Detail + ", " + s
}

// impact says what a problem did and would do: the milestone a failure
// blocked, and the phase it would hurt.
func impact(a timeline.Attention) string {
	var parts []string
	switch {
	case a.Blocks == "":
	case a.BlocksFired:
		parts = append(parts, "for "+a.BlocksTitle+" (seen on other flows)")
	default:
		parts = append(parts, "blocked "+a.BlocksTitle)
	}
	if h := hurts(a); h != "" {
		parts = append(parts, h)
	}
	return strings.Join(parts, "; ")
}

// kindName is an attention kind for people.
func kindName(k string) string {
	switch k {
	case timeline.AttentionRefused:
		return "Refused"
	case timeline.AttentionFailed:
		return "Failed"
	case timeline.AttentionUnknownHost:
		return "Not in catalog"
	case timeline.AttentionSNIMismatch:
		return "SNI mismatch"
	case timeline.AttentionSlow:
		return "Slow content"
	}
	return k
}

// maxPerKind is how many attention items of one kind the text and
// Markdown reports list; the JSON and HTML reports list them all.
const maxPerKind = 12

// trimAttention keeps the first maxPerKind items of each kind and says how
// many of each were left out.
func trimAttention(all []timeline.Attention) ([]timeline.Attention, map[string]int) {
	var out []timeline.Attention
	seen, left := map[string]int{}, map[string]int{}
	for _, a := range all {
		seen[a.Kind]++
		if seen[a.Kind] > maxPerKind {
			left[a.Kind]++
			continue
		}
		out = append(out, a)
	}
	return out, left
}

// leftOut says what trimAttention left out.
func leftOut(left map[string]int) string {
	var parts []string
	for _, k := range []string{timeline.AttentionRefused, timeline.AttentionFailed, timeline.AttentionSNIMismatch,
		timeline.AttentionSlow, timeline.AttentionUnknownHost} {
		if n := left[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d more %s", n, strings.ToLower(kindName(k))))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "And " + strings.Join(parts, ", ") + " (the JSON and HTML reports list them all)."
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

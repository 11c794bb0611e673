package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pilotwire/pilotwire/internal/timeline"
)

// Text writes the report as plain text that reads like the seed's
// annotated list:
//
//	00:12  Autopilot profile download — ztd.dds.microsoft.com (Autopilot deployment service)
//	       The Autopilot deployment service hands over the device's profile …
//
// Lines fit opt.Width columns (100 by default). Control characters from
// host names or URLs are shown escaped, so a hostile name cannot drive the
// terminal.
func Text(w io.Writer, tl *timeline.Timeline, opt Options) error {
	width := opt.Width
	if width <= 0 {
		width = 100
	}
	bw := bufio.NewWriter(w)
	p := &textWriter{w: bw, width: width}
	p.line(title(tl))
	p.wrap("", summary(tl)+"; "+t0Note(tl)+".")
	if opt.Source != "" {
		p.wrap("", "Source: "+opt.Source+".")
	}
	if v := verdict(tl); v != "" {
		p.line("")
		p.wrap("", v)
	}
	if len(tl.Milestones) == 0 {
		p.line("")
		p.line("No flows in this session.")
		return bw.Flush()
	}

	p.line("")
	p.line("What happened")
	ow := 0
	for _, m := range tl.Milestones {
		ow = max(ow, len(timeline.FormatOffset(m.Offset)))
	}
	indent := strings.Repeat(" ", ow+2)
	for _, m := range tl.Milestones {
		off := timeline.FormatOffset(m.Offset)
		head := fmt.Sprintf("%*s  %s", ow, off, m.Title)
		groups, more := groupHosts(m.Hosts, 4)
		var hosts []string
		for _, g := range groups {
			hosts = append(hosts, strings.Join(g.hosts, ", ")+" ("+g.what+")")
		}
		if more > 0 {
			hosts = append(hosts, fmt.Sprintf("and %d more", more))
		}
		if len(hosts) > 0 {
			head += " — " + strings.Join(hosts, ", ")
		}
		p.wrap(indent, head)
		p.wrap(indent, indent+m.Text)
		if m.Why != "" {
			p.wrap(indent, indent+"Why likely: "+m.Why+".")
		}
	}

	if len(tl.Phases) > 0 {
		p.line("")
		p.line("Phases")
		nw := 5
		for _, ph := range tl.Phases {
			nw = max(nw, utf8.RuneCountInString(ph.Name))
		}
		p.line(fmt.Sprintf("%-*s  %5s  %5s  %8s  %5s  %9s", nw, "PHASE", "START", "END", "DURATION", "FLOWS", "BYTES"))
		ind := strings.Repeat(" ", 2)
		for _, ph := range tl.Phases {
			p.line(fmt.Sprintf("%-*s  %5s  %5s  %8s  %5d  %9s", nw, ph.Name, timeline.FormatOffset(ph.StartOffset),
				timeline.FormatOffset(ph.EndOffset), timeline.FormatOffset(ph.Duration()), ph.Flows, timeline.FormatBytes(ph.Bytes)))
			if d := dominated(ph, 3); d != "" {
				p.wrap(ind+"  ", ind+"mostly "+d)
			}
		}
	}

	p.line("")
	p.line("Services")
	sw := 7
	for _, b := range tl.Services {
		sw = max(sw, utf8.RuneCountInString(b.Service.Name))
	}
	sw = min(sw, width-60)
	p.line(fmt.Sprintf("%-*s  %5s  %5s  %6s  %9s  %s", sw, "SERVICE", "FIRST", "LAST", "FLOWS", "BYTES", "CONTENT"))
	for _, b := range tl.Services {
		content := "-"
		if b.Transfers > 0 {
			content = fmt.Sprintf("%d × %s", b.Transfers, timeline.FormatRate(b.Throughput))
		}
		name := b.Service.Name
		if utf8.RuneCountInString(name) > sw {
			name = string([]rune(name)[:sw-1]) + "…"
		}
		p.line(fmt.Sprintf("%-*s  %5s  %5s  %6d  %9s  %s", sw, name, timeline.FormatOffset(b.First.Sub(tl.T0)),
			timeline.FormatOffset(b.Last.Sub(tl.T0)), b.Flows, timeline.FormatBytes(b.Bytes()), content))
	}

	p.line("")
	p.line("Needs attention")
	if len(tl.Attention) == 0 {
		p.line("Nothing: no refused or failed flows, every host known, no slow content.")
	}
	shown, left := trimAttention(tl.Attention)
	for _, a := range shown {
		s := fmt.Sprintf("%s  %-14s %s", timeline.FormatOffset(a.Offset), kindName(a.Kind), a.Host.Host)
		var tail []string
		if d := detail(a); d != "" {
			tail = append(tail, d)
		}
		if !failure(a) {
			tail = append(tail, plural(int64(a.Flows), "flow", "flows"))
		}
		if h := impact(a); h != "" {
			tail = append(tail, h)
		}
		p.wrap(strings.Repeat(" ", ow+2+15), s+" — "+strings.Join(tail, "; "))
	}
	if l := leftOut(left); l != "" {
		p.wrap("", l)
	}
	return bw.Flush()
}

// textWriter writes lines of at most width columns.
type textWriter struct {
	w     *bufio.Writer
	width int
}

func (p *textWriter) line(s string) {
	p.w.WriteString(strings.TrimRight(safe(s), " "))
	p.w.WriteByte('\n')
}

// wrap writes s, breaking it at spaces into lines of at most width
// columns; continuation lines start with indent. Runs of spaces inside a
// line are kept (they align columns). A word longer than a line (a long
// URL) is cut.
func (p *textWriter) wrap(indent, s string) {
	s = safe(s)
	iw := utf8.RuneCountInString(indent)
	lead := len(s) - len(strings.TrimLeft(s, " "))
	cur := []rune(s[:lead])
	for i, word := range strings.Split(s[lead:], " ") {
		w := []rune(word)
		switch {
		case i == 0:
		case len(cur)+1+len(w) <= p.width:
			cur = append(cur, ' ')
		case len(w) == 0:
			continue
		default:
			p.line(string(cur))
			cur = []rune(indent)
		}
		for len(cur)+len(w) > p.width && p.width-len(cur) > 8 && len(w) > p.width-iw {
			n := p.width - len(cur)
			cur = append(cur, w[:n]...)
			w = w[n:]
			p.line(string(cur))
			cur = []rune(indent)
		}
		cur = append(cur, w...)
	}
	p.line(string(cur))
}

// safe escapes control characters.
func safe(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

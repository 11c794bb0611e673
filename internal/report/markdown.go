package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/pilotwire/pilotwire/internal/timeline"
)

// Markdown writes the report as GitHub-flavoured Markdown, for a ticket or
// a blog post. Host names are code spans and all other text is escaped, so
// a hostile host name shows as text and never as markup or HTML.
func Markdown(w io.Writer, tl *timeline.Timeline, opt Options) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p("# %s\n\n", mdText(title(tl)))
	p("%s; %s.", mdText(summary(tl)), mdText(t0Note(tl)))
	if opt.Source != "" {
		p(" Source: %s.", mdCode(opt.Source))
	}
	p("\n\n")
	if v := verdict(tl); v != "" {
		p("**%s**\n\n", mdText(v))
	}
	if len(tl.Milestones) == 0 {
		p("No flows in this session.\n")
		return bw.Flush()
	}

	p("## What happened\n\n")
	p("| Time | What happened | Hosts |\n|---:|---|---|\n")
	for _, m := range tl.Milestones {
		text := "**" + mdText(m.Title) + ".** " + mdText(m.Text)
		if m.Why != "" {
			text += " *Why likely:* " + mdText(m.Why) + "."
		}
		groups, more := groupHosts(m.Hosts, 6)
		var hosts []string
		for _, g := range groups {
			var hs []string
			for _, h := range g.hosts {
				hs = append(hs, mdCode(h))
			}
			hosts = append(hosts, strings.Join(hs, ", ")+" ("+mdText(g.what)+")")
		}
		if more > 0 {
			hosts = append(hosts, fmt.Sprintf("and %d more", more))
		}
		p("| %s | %s | %s |\n", timeline.FormatOffset(m.Offset), text, strings.Join(hosts, ", "))
	}

	if len(tl.Phases) > 0 {
		p("\n## Phases\n\n")
		p("| Phase | Start | End | Duration | Flows | Bytes | Mostly |\n|---|---:|---:|---:|---:|---:|---|\n")
		for _, ph := range tl.Phases {
			p("| %s | %s | %s | %s | %d | %s | %s |\n", mdText(ph.Name), timeline.FormatOffset(ph.StartOffset),
				timeline.FormatOffset(ph.EndOffset), timeline.FormatOffset(ph.Duration()), ph.Flows,
				timeline.FormatBytes(ph.Bytes), mdText(dominated(ph, 3)))
		}
	}

	p("\n## Services\n\n")
	p("| Service | First | Last | Flows | Bytes | Content transfers | Top hosts |\n|---|---:|---:|---:|---:|---|---|\n")
	for _, b := range tl.Services {
		content := "–"
		if b.Transfers > 0 {
			content = fmt.Sprintf("%d at %s", b.Transfers, timeline.FormatRate(b.Throughput))
		}
		var hosts []string
		for i, h := range b.Hosts {
			if i == 3 {
				hosts = append(hosts, fmt.Sprintf("and %d more", b.HostCount-3))
				break
			}
			hosts = append(hosts, mdCode(h.Host))
		}
		p("| %s | %s | %s | %d | %s | %s | %s |\n", mdText(b.Service.Name), timeline.FormatOffset(b.First.Sub(tl.T0)),
			timeline.FormatOffset(b.Last.Sub(tl.T0)), b.Flows, timeline.FormatBytes(b.Bytes()), content, strings.Join(hosts, ", "))
	}

	p("\n## Needs attention\n\n")
	if len(tl.Attention) == 0 {
		p("Nothing: no refused or failed flows, every host known, no slow content.\n")
		return bw.Flush()
	}
	p("| Time | Kind | Host | Detail | Flows | Impact |\n|---:|---|---|---|---:|---|\n")
	shown, left := trimAttention(tl.Attention)
	for _, a := range shown {
		p("| %s | %s | %s | %s | %d | %s |\n", timeline.FormatOffset(a.Offset), kindName(a.Kind), mdCode(a.Host.Host),
			mdText(detail(a)), a.Flows, mdText(impact(a)))
	}
	if l := leftOut(left); l != "" {
		p("\n%s\n", mdText(l))
	}
	return bw.Flush()
}

// mdEscaper escapes the characters that Markdown (and the HTML it may
// carry) would read as markup, and '|', which would end a table cell.
var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "|", `\|`,
	"<", "&lt;", ">", "&gt;", "&", "&amp;", "#", `\#`, "!", `\!`, "~", `\~`,
	"\n", " ", "\r", " ",
)

func mdText(s string) string { return mdEscaper.Replace(safe(s)) }

// mdCode is s as a code span. Code spans show their content literally
// (HTML included); a backtick inside is lengthened around, and '|' is
// escaped for the table.
func mdCode(s string) string {
	s = strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(safe(s))
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

package catalog

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Formats are the export formats, in the order help texts list them.
var formats = []string{"squid", "pac", "hosts", "csv", "json", "markdown"}

// Formats returns the names Export accepts.
func Formats() []string { return slices.Clone(formats) }

// Selection picks entries for listing and export. Zero fields select all.
type Selection struct {
	Phases   []string   // only entries in these phases
	Services []string   // only entries of these services
	Required []Required // only entries with these required values
	// NoInspect keeps only entries whose TLS must never be inspected:
	// the bypass list of a TLS-inspecting firewall.
	NoInspect bool
}

// Select returns the entries s picks, in catalog order. It reports an
// unknown phase, service or required value as an error.
func (c *Catalog) Select(s Selection) ([]Entry, error) {
	for _, p := range s.Phases {
		if !KnownPhase(p) {
			return nil, fmt.Errorf("unknown phase %q (known: %s)", p, strings.Join(phases, ", "))
		}
	}
	for _, id := range s.Services {
		if _, ok := c.Service(id); !ok {
			return nil, fmt.Errorf("unknown service %q (see pilotwire endpoints services)", id)
		}
	}
	for _, r := range s.Required {
		if !r.Valid() {
			return nil, fmt.Errorf("required is %q; want yes, no or unknown", r)
		}
	}
	var out []Entry
	for _, e := range c.entries {
		if len(s.Phases) > 0 && !slices.Contains(s.Phases, e.Phase) ||
			len(s.Services) > 0 && !slices.Contains(s.Services, e.Service) ||
			len(s.Required) > 0 && !slices.Contains(s.Required, e.Required) ||
			s.NoInspect && e.NoInspect == "" {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// ExportOptions tune Export.
type ExportOptions struct {
	// Title is written as a comment atop the formats that take comments
	// (squid, pac, hosts, markdown), e.g. the command line that made it.
	Title string
	// PAC routes, as FindProxyForURL returns them ("DIRECT",
	// "PROXY host:port", "PROXY a:1; DIRECT"): Catalog for hosts the
	// exported entries cover, Others for every other host. Empty means
	// DIRECT.
	Catalog, Others string
}

// Export writes entries in format. Entries whose Service the catalog does
// not know (observed hosts that match nothing) are exported with the
// service "unknown".
func (c *Catalog) Export(w io.Writer, format string, entries []Entry, opt ExportOptions) error {
	bw := bufio.NewWriter(w)
	var err error
	switch format {
	case "squid":
		err = exportSquid(bw, entries, opt)
	case "pac":
		err = exportPAC(bw, entries, opt)
	case "hosts":
		err = exportHosts(bw, entries, opt)
	case "csv":
		err = c.exportCSV(bw, entries)
	case "json":
		err = c.exportJSON(bw, entries)
	case "markdown":
		err = c.exportMarkdown(bw, entries, opt)
	default:
		return fmt.Errorf("unknown export format %q (want %s)", format, strings.Join(formats, ", "))
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

func (c *Catalog) serviceName(id string) string {
	if s, ok := c.Service(id); ok {
		return s.Name
	}
	if id == "" {
		return "unknown"
	}
	return id
}

func writeComment(w io.Writer, prefix, text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(w, "%s%s\n", prefix, l)
	}
}

// reversedKey sorts host names so that a domain and its subdomains sit
// together: "com.microsoft.manage.fef".
func reversedKey(h string) string {
	h = strings.TrimPrefix(h, ".")
	labels := strings.Split(h, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

func sortHosts(hs []string) {
	slices.SortFunc(hs, func(a, b string) int {
		if c := strings.Compare(reversedKey(a), reversedKey(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
}

// literalSuffix is the part of a wildcard pattern right of its wildcard
// label: "prod.do.dsp.mp.microsoft.com" for "kv*.prod.do.dsp.mp.microsoft.com".
// It is "" for prefix patterns ("wpad.*").
func literalSuffix(pattern string) string {
	if strings.HasSuffix(pattern, ".*") {
		return ""
	}
	labels := strings.Split(pattern, ".")
	for i := len(labels) - 1; i >= 0; i-- {
		if hasStar(labels[i]) {
			return strings.Join(labels[i+1:], ".")
		}
	}
	return pattern
}

// squidList turns patterns into Squid dstdomain values: an exact host
// stays, "*.suffix" becomes ".suffix" (which in Squid also matches suffix
// itself). Squid refuses a list where one value covers another, so values
// covered by a ".domain" value are dropped. Patterns dstdomain cannot say
// (label globs, inner wildcards, wpad.*) are kept only when a ".domain"
// value covers them; the rest are returned in skipped.
func squidList(entries []Entry) (values []string, skipped []string) {
	set := map[string]bool{}
	var odd []string
	for _, e := range entries {
		p := e.Pattern
		switch {
		case !hasStar(p):
			set[p] = true
		case strings.HasPrefix(p, "*.") && !hasStar(p[2:]):
			set[p[1:]] = true
		default:
			odd = append(odd, p)
		}
	}
	covered := func(host string) bool { // by a ".domain" value other than host itself
		h := strings.TrimPrefix(host, ".")
		if !strings.HasPrefix(host, ".") && set["."+h] {
			return true
		}
		for i := strings.IndexByte(h, '.'); i >= 0; i = strings.IndexByte(h, '.') {
			h = h[i+1:]
			if set["."+h] {
				return true
			}
		}
		return false
	}
	for v := range set {
		if !covered(v) {
			values = append(values, v)
		}
	}
	for _, p := range odd {
		if s := literalSuffix(p); s == "" || !covered("x."+s) {
			skipped = append(skipped, p)
		}
	}
	sortHosts(values)
	sortHosts(skipped)
	return values, skipped
}

func exportSquid(w io.Writer, entries []Entry, opt ExportOptions) error {
	values, skipped := squidList(entries)
	writeComment(w, "# ", "Squid dstdomain list made by pilotwire from its endpoint catalog.")
	if opt.Title != "" {
		writeComment(w, "# ", opt.Title)
	}
	writeComment(w, "# ", fmt.Sprintf("%d values for %d catalog patterns. Use it as:\n  acl autopilot dstdomain \"/path/to/this/file\"\n"+
		"A value \".example.com\" matches example.com and every name under it; values another one\n"+
		"already covers are left out, as Squid refuses overlapping dstdomain values.", len(values), len(entries)))
	for _, p := range skipped {
		fmt.Fprintf(w, "# not expressible as dstdomain, add it yourself: %s (dstdom_regex %s)\n", p, patternRegex(p))
	}
	for _, v := range values {
		fmt.Fprintln(w, v)
	}
	return nil
}

func exportHosts(w io.Writer, entries []Entry, opt ExportOptions) error {
	var hs []string
	seen := map[string]bool{}
	for _, e := range entries {
		if !seen[e.Pattern] {
			seen[e.Pattern] = true
			hs = append(hs, e.Pattern)
		}
	}
	sortHosts(hs)
	writeComment(w, "# ", "Host patterns from pilotwire's endpoint catalog, one a line.\n\"*.example.com\": any name under example.com (not example.com itself).")
	if opt.Title != "" {
		writeComment(w, "# ", opt.Title)
	}
	for _, h := range hs {
		fmt.Fprintln(w, h)
	}
	return nil
}

// patternRegex is an anchored regular expression (JavaScript and POSIX ERE
// alike) for a pattern under the matching rules of this package.
func patternRegex(p string) string {
	if first, ok := strings.CutSuffix(p, ".*"); ok {
		return "^" + regexp.QuoteMeta(first) + `(\.|$)`
	}
	labels := strings.Split(p, ".")
	var b strings.Builder
	b.WriteString("^")
	for i, l := range labels {
		if i > 0 {
			b.WriteString(`\.`)
		}
		switch {
		case i == 0 && l == "*":
			b.WriteString(`([^.]+\.)*[^.]+`)
		case l == "*":
			b.WriteString(`[^.]+(\.[^.]+)*`)
		case hasStar(l):
			parts := strings.Split(l, "*")
			for k, part := range parts {
				if k > 0 {
					b.WriteString(`[^.]*`)
				}
				b.WriteString(regexp.QuoteMeta(part))
			}
		default:
			b.WriteString(regexp.QuoteMeta(l))
		}
	}
	b.WriteString("$")
	return b.String()
}

// pacRoute checks a FindProxyForURL result so that it can be embedded in
// JavaScript safely.
var pacRoute = regexp.MustCompile(`^(DIRECT|(PROXY|HTTPS|SOCKS|SOCKS4|SOCKS5) [A-Za-z0-9._\-\[\]:]+)(; ?(DIRECT|(PROXY|HTTPS|SOCKS|SOCKS4|SOCKS5) [A-Za-z0-9._\-\[\]:]+))*$`)

// ValidPACRoute reports whether r is a valid FindProxyForURL result.
func ValidPACRoute(r string) bool { return pacRoute.MatchString(r) }

func exportPAC(w io.Writer, entries []Entry, opt ExportOptions) error {
	in, out := opt.Catalog, opt.Others
	if in == "" {
		in = "DIRECT"
	}
	if out == "" {
		out = "DIRECT"
	}
	for _, r := range []string{in, out} {
		if !ValidPACRoute(r) {
			return fmt.Errorf("PAC route %q: want DIRECT, PROXY host:port, or such values joined by \"; \"", r)
		}
	}
	var exact, under, res []string
	seen := map[string]bool{}
	for _, e := range entries {
		p := e.Pattern
		if seen[p] {
			continue
		}
		seen[p] = true
		switch {
		case !hasStar(p):
			exact = append(exact, p)
		case strings.HasPrefix(p, "*.") && !hasStar(p[2:]):
			under = append(under, p[2:])
		default:
			res = append(res, p)
		}
	}
	sortHosts(exact)
	sortHosts(under)
	sortHosts(res)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	writeComment(w, "// ", "Proxy auto-config made by pilotwire from its endpoint catalog.")
	if opt.Title != "" {
		writeComment(w, "// ", opt.Title)
	}
	writeComment(w, "// ", fmt.Sprintf("Hosts the %d catalog patterns cover go %s; all other hosts go %s.", len(seen), in, out))
	fmt.Fprintln(w, "var catalogExact = {")
	for i, h := range exact {
		fmt.Fprintf(w, "  %s: 1%s\n", q(h), comma(i, len(exact)))
	}
	fmt.Fprintln(w, "};")
	fmt.Fprintln(w, "// \"*.suffix\" patterns: any name strictly under the suffix.")
	fmt.Fprintln(w, "var catalogUnder = {")
	for i, h := range under {
		fmt.Fprintf(w, "  %s: 1%s\n", q(h), comma(i, len(under)))
	}
	fmt.Fprintln(w, "};")
	fmt.Fprintln(w, "var catalogPatterns = [")
	for i, p := range res {
		fmt.Fprintf(w, "  /%s/%s // %s\n", patternRegex(p), comma(i, len(res)), p)
	}
	fmt.Fprintln(w, "];")
	fmt.Fprintf(w, `
function inCatalog(host) {
  host = host.toLowerCase();
  if (host.charAt(host.length - 1) == ".") {
    host = host.substring(0, host.length - 1);
  }
  if (Object.prototype.hasOwnProperty.call(catalogExact, host)) {
    return true;
  }
  for (var i = host.indexOf("."); i >= 0; i = host.indexOf(".", i + 1)) {
    if (Object.prototype.hasOwnProperty.call(catalogUnder, host.substring(i + 1))) {
      return true;
    }
  }
  for (var j = 0; j < catalogPatterns.length; j++) {
    if (catalogPatterns[j].test(host)) {
      return true;
    }
  }
  return false;
}

function FindProxyForURL(url, host) {
  if (inCatalog(host)) {
    return %s;
  }
  return %s;
}
`, q(in), q(out))
	return nil
}

func comma(i, n int) string {
	if i < n-1 {
		return ","
	}
	return ""
}

var csvHeader = []string{"pattern", "example", "service", "service_name", "phase", "required", "purpose", "source"}

func (c *Catalog) exportCSV(w io.Writer, entries []Entry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, e := range entries {
		svc := e.Service
		if svc == "" {
			svc = "unknown"
		}
		rec := []string{e.Pattern, e.Example, svc, c.serviceName(e.Service), e.Phase, string(e.Required), e.Purpose, e.Source}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// JSONEntry is the JSON shape of an exported entry.
type JSONEntry struct {
	Pattern      string `json:"pattern"`
	Example      string `json:"example"`
	Service      string `json:"service"`
	ServiceName  string `json:"service_name"`
	ServiceColor string `json:"service_color,omitempty"`
	Phase        string `json:"phase"`
	Required     string `json:"required"`
	Purpose      string `json:"purpose"`
	Source       string `json:"source"`
}

func (c *Catalog) exportJSON(w io.Writer, entries []Entry) error {
	out := make([]JSONEntry, 0, len(entries))
	for _, e := range entries {
		j := JSONEntry{Pattern: e.Pattern, Example: e.Example, Service: e.Service, ServiceName: c.serviceName(e.Service),
			Phase: e.Phase, Required: string(e.Required), Purpose: e.Purpose, Source: e.Source}
		if s, ok := c.Service(e.Service); ok {
			j.ServiceColor = s.Color
		}
		if j.Service == "" {
			j.Service = "unknown"
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func mdCell(s string) string {
	s = strings.ReplaceAll(s, "\\", "\\\\")
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}

func (c *Catalog) exportMarkdown(w io.Writer, entries []Entry, opt ExportOptions) error {
	if opt.Title != "" {
		// A comment may hold "--" but must not end early with "-->".
		writeComment(w, "", "<!-- "+strings.ReplaceAll(opt.Title, "-->", "- ->")+" -->")
	}
	fmt.Fprintln(w, "| Host pattern | Service | Phase | Required | Purpose | Source |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, e := range entries {
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s | %s |\n", strings.ReplaceAll(e.Pattern, "`", ""), mdCell(c.serviceName(e.Service)),
			mdCell(e.Phase), e.Required, mdCell(e.Purpose), mdCell(e.Source))
	}
	return nil
}

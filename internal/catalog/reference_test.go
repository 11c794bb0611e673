package catalog

import (
	"bufio"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/testutil"
)

var updateReference = flag.Bool("update-reference", false, "rewrite testdata/reference-patterns.txt from the reference document (new tokens map to themselves)")

const referencePatternsFile = "testdata/reference-patterns.txt"

// refLine is one line of reference-patterns.txt.
type refLine struct {
	token     string
	patterns  []string // catalog patterns the token is written as
	exampleOf string   // the token is the document's example host of this wildcard
	line      int
}

func readReferencePatterns(t *testing.T) []refLine {
	t.Helper()
	f, err := os.Open(referencePatternsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []refLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		token, mapping, _ := strings.Cut(text, "\t")
		r := refLine{token: token, line: n}
		switch {
		case mapping == "":
			r.patterns = []string{token}
		case strings.HasPrefix(mapping, "example-of "):
			r.exampleOf = strings.TrimPrefix(mapping, "example-of ")
		default:
			r.patterns = strings.Fields(mapping)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReferenceCovered checks that every host pattern of the reference
// document's tables is in the catalog: none dropped.
func TestReferenceCovered(t *testing.T) {
	refs := readReferencePatterns(t)
	if len(refs) < 380 {
		t.Fatalf("%s has %d tokens; the reference tables hold about 388", referencePatternsFile, len(refs))
	}
	c := Default()
	have := map[string]Entry{}
	for _, e := range c.Entries() {
		have[e.Pattern] = e
	}
	for _, r := range refs {
		if r.exampleOf != "" {
			m, ok := c.Lookup(r.token)
			switch {
			case !ok:
				t.Errorf("%s:%d: %s (example of %s) matches nothing", referencePatternsFile, r.line, r.token, r.exampleOf)
			case m.Entry.Pattern != r.exampleOf:
				t.Errorf("%s:%d: %s matches %s, want %s", referencePatternsFile, r.line, r.token, m.Entry.Pattern, r.exampleOf)
			}
			continue
		}
		for _, p := range r.patterns {
			if _, ok := have[p]; !ok {
				t.Errorf("%s:%d: reference pattern %s (as %s) is not in catalog.yaml", referencePatternsFile, r.line, r.token, p)
			}
		}
	}
}

// referenceDoc returns the path of the reference document beside the
// repository, or skips.
func referenceDoc(t *testing.T) string {
	t.Helper()
	p, ok := testutil.SharedPath(t, "reference", "autopilot-endpoints.md")
	if !ok {
		t.Skipf("reference document %s is not here; %s is the checked-in copy of its patterns", p, referencePatternsFile)
	}
	return p
}

var backticked = regexp.MustCompile("`([^`]+)`")

// extractReferenceTokens returns the backticked host names in the first
// column of the document's endpoint tables (sections 1 to 19), in order.
func extractReferenceTokens(doc string) []string {
	var toks []string
	on := false
	for _, l := range strings.Split(doc, "\n") {
		switch {
		case strings.HasPrefix(l, "## 1."):
			on = true
		case strings.HasPrefix(l, "## Blog"):
			on = false
		}
		if !on || !strings.HasPrefix(l, "|") || strings.HasPrefix(l, "|---") || strings.HasPrefix(l, "| Host pattern") {
			continue
		}
		cell := strings.Split(l, "|")[1]
		for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
			tok := m[1]
			if strings.Contains(tok, ".") && !strings.HasPrefix(tok, "/") && !slices.Contains(toks, tok) {
				toks = append(toks, tok)
			}
		}
	}
	return toks
}

// TestReferenceDocInSync checks the checked-in token list against the
// reference document itself.
func TestReferenceDocInSync(t *testing.T) {
	p := referenceDoc(t)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	docToks := extractReferenceTokens(string(data))
	refs := readReferencePatterns(t)
	var fileToks []string
	for _, r := range refs {
		fileToks = append(fileToks, r.token)
	}
	if *updateReference {
		writeReferencePatterns(t, docToks, refs)
		return
	}
	for _, tok := range docToks {
		if !slices.Contains(fileToks, tok) {
			t.Errorf("reference document has %q, %s does not (run go test -run TestReferenceDocInSync -update-reference, then map it)", tok, referencePatternsFile)
		}
	}
	for _, tok := range fileToks {
		if !slices.Contains(docToks, tok) {
			t.Errorf("%s has %q, the reference document no longer does", referencePatternsFile, tok)
		}
	}
}

func writeReferencePatterns(t *testing.T, toks []string, old []refLine) {
	t.Helper()
	data, err := os.ReadFile(referencePatternsFile)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		b.WriteString(l)
	}
	mapping := map[string]string{}
	for _, r := range old {
		switch {
		case r.exampleOf != "":
			mapping[r.token] = "example-of " + r.exampleOf
		case len(r.patterns) != 1 || r.patterns[0] != r.token:
			mapping[r.token] = strings.Join(r.patterns, " ")
		}
	}
	for _, tok := range toks {
		b.WriteString(tok)
		if m := mapping[tok]; m != "" {
			b.WriteString("\t" + m)
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(referencePatternsFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// proseExclusions are host names the reference document mentions outside
// its tables that the catalog deliberately does not carry.
var proseExclusions = map[string]string{
	"oscp.digicert.com":                        "a typo in the 2019 blog post, quoted as such",
	"*.microsoft.com":                          "optional catch-all the document says not to label phases by",
	"*.trafficmanager.net":                     "CNAME target; the document says to key on the asked name",
	"*.akadns.net":                             "CNAME target",
	"*.edgekey.net":                            "CNAME target",
	"*.akamaized.net":                          "CNAME target",
	"*.azurefd.net":                            "CNAME target",
	"geo.prod.do.dsp.trafficmanager.net":       "CNAME target",
	"glb.cws.prod.dcat.dsp.trafficmanager.net": "CNAME target",
	"ts-frontend.trafficmanager.net":           "CNAME target",
	"endpoints.office.com":                     "Microsoft's endpoint web service, named as where to re-pull the lists",
	"*.suffix":                                 "the document's notation, not a host",
	"events.data.microsoft.com":                "named as the suffix to match on; *.events.data.microsoft.com is the entry",
}

// TestReferenceProseHosts checks that the host names the document mentions
// outside its tables (timeline reconstruction, wildcard and sovereign-cloud
// notes) are known to the catalog, or deliberately excluded.
func TestReferenceProseHosts(t *testing.T) {
	p := referenceDoc(t)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	hostLike := regexp.MustCompile(`^[*a-zA-Z0-9][*a-zA-Z0-9.-]*\.[a-zA-Z]{2,}$`)
	checked := 0
	for _, m := range backticked.FindAllStringSubmatch(string(data), -1) {
		tok := m[1]
		if u, ok := strings.CutPrefix(tok, "https://"); ok {
			tok, _, _ = strings.Cut(u, "/")
		}
		if !hostLike.MatchString(tok) || strings.Contains(tok, "..") || strings.HasSuffix(tok, ".md") || strings.HasSuffix(tok, ".exe") ||
			strings.HasSuffix(tok, ".ps1") || strings.HasSuffix(tok, ".py") || strings.HasSuffix(tok, ".csv") {
			continue
		}
		if _, ok := proseExclusions[strings.ToLower(tok)]; ok {
			continue
		}
		checked++
		host := strings.ToLower(tok)
		if hasStar(host) {
			if !slices.ContainsFunc(c.Entries(), func(e Entry) bool { return e.Pattern == host }) {
				t.Errorf("document names the pattern %s; the catalog does not have it", tok)
			}
			continue
		}
		if _, ok := c.Lookup(host); !ok {
			t.Errorf("document names %s; the catalog does not know it", tok)
		}
	}
	if checked < 400 {
		t.Errorf("checked only %d host names from the document; the extraction is broken", checked)
	}
}

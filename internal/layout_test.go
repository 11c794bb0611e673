// Package internal_test pins which of pilotwire's packages may import which,
// so the layout in DESIGN.md stays true as the code grows.
package internal_test

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/pilotwire/pilotwire"

// rules: for each package (prefix), the imports it must not have. A rule
// ending in "/" forbids every package under it but those in except.
var rules = []struct {
	pkg       string
	forbidden []string
	why       string
	except    []string
}{
	// flow may use the host-pattern language, itself a leaf: Filter.Hosts
	// is a host pattern, and Filter.Match the one definition of a filter.
	{"internal/flow", []string{module + "/", "net/http", "database/sql"}, "flow is the shared vocabulary and must stay dependency-free (the pattern language aside)",
		[]string{module + "/internal/pattern"}},
	{"internal/pattern", []string{module + "/"}, "the host-pattern language is a leaf that every part, flow included, may use", nil},
	{"internal/proxy", []string{module + "/internal/catalog", module + "/internal/timeline", module + "/internal/store/", module + "/internal/report", "database/sql"}, "the proxy forwards and records; it knows nothing of meaning or storage", nil},
	{"internal/catalog", []string{module + "/internal/store/", module + "/internal/proxy", "database/sql", "net/http"}, "the catalog is data and matching only", nil},
	{"internal/timeline", []string{module + "/internal/store/", module + "/internal/proxy", "database/sql", "net/http", "net"}, "the timeline is pure functions over flows", nil},
	{"internal/report", []string{module + "/internal/store/", module + "/internal/proxy", "database/sql"}, "report renders; it does not fetch", nil},
	{"internal/importer", []string{module + "/internal/store/", module + "/internal/catalog", "database/sql"}, "importers turn files into flows, nothing more", nil},
	{"internal/timeline", []string{module + "/internal/report", module + "/internal/importer/"}, "the timeline computes meaning; rendering and reading files are others' jobs", nil},
	{"internal/report", []string{module + "/internal/importer/", module + "/internal/catalog", module + "/internal/session"}, "report renders a timeline; it computes no meaning", nil},
	{"internal/session", []string{module + "/internal/report", module + "/internal/proxy", module + "/internal/store/", "database/sql", "net/http"}, "session finds sessions and hands out flows; it renders nothing and reads stores through flow.Store", nil},
	{"internal/diff", []string{module + "/internal/store/", module + "/internal/session", module + "/internal/report", module + "/internal/importer", module + "/internal/proxy", "database/sql", "net/http"}, "diff compares two timelines; sessions come from session, words from report", nil},
	{"internal/scenario", []string{module + "/internal/store/", module + "/internal/proxy", module + "/internal/timeline", module + "/internal/report", module + "/internal/session", "database/sql"}, "simulated devices play scenarios like a real client; what a run means is others' job", nil},
	{"internal/export", []string{module + "/internal/store/", module + "/internal/catalog", module + "/internal/timeline", module + "/internal/session", module + "/internal/importer", "net/http"}, "export writes flows in other tools' formats, nothing more", nil},
	{"internal/web", []string{module + "/internal/store/", module + "/internal/importer", module + "/internal/proxy", module + "/internal/check", "database/sql"}, "the page reads through flow.Store and session; cmd wires the store, the proxy and the network check in", nil},
	{"internal/metrics", []string{module + "/internal/store/", module + "/internal/proxy", module + "/internal/web", module + "/internal/report", "database/sql"}, "metrics counts and observes; cmd hands it the proxy's, recorder's and interceptor's counters as functions", nil},
	{"internal/intercept", []string{module + "/internal/store/", module + "/internal/proxy", module + "/internal/catalog", module + "/internal/timeline", module + "/internal/session", "database/sql"}, "interception serves one tunnel the proxy hands it; what to leave alone comes in as functions and patterns", nil},
	{"internal/capture", []string{module + "/internal/store/", module + "/internal/proxy", module + "/internal/catalog", module + "/internal/timeline", module + "/internal/web", "database/sql", "net/http"}, "passive capture reads frames and hands flows to a Record function; the pcap importer's decoder makes them", nil},
	{"internal/gateway", []string{module + "/internal/store/", module + "/internal/catalog", module + "/internal/timeline", module + "/internal/session", module + "/internal/report", module + "/internal/web", "database/sql"}, "the gateway redirects, forwards and notes; flows go to a Record function, meaning is others' job", nil},
	{"internal/ca", []string{module + "/"}, "the lab CA is a leaf: keys and certificates only", nil},
	{"internal/store/schema", storeForbidden("schema"), "migrations and column names both stores share; it knows no store", nil},
	{"internal/store/segment", storeForbidden("segment"), "the segment format and merge both stores share; it knows no store or database", nil},
	{"internal/procstat", []string{module + "/"}, "reading /proc is a leaf the benchmarks and tests share", nil},
	{"internal/spool", []string{module + "/internal/store/", module + "/internal/proxy", module + "/internal/catalog", module + "/internal/session", "database/sql", "net/http"}, "the spool keeps flows on disk for the Recorder; it knows no store", nil},
	{"internal/allowlist", []string{module + "/internal/store/", module + "/internal/proxy", module + "/internal/timeline", module + "/internal/session", "net/http", "database/sql"}, "allowlists are parsed and matched; the proxy and the report ask them", nil},
	{"internal/check", []string{module + "/internal/store/", module + "/internal/proxy", module + "/internal/report", module + "/internal/web", "database/sql"}, "check probes the network itself, as a device would; it does not go through pilotwire's proxy code", nil},
	{"internal/live", []string{module + "/internal/store/", module + "/internal/catalog", module + "/internal/timeline", module + "/internal/session", module + "/internal/report", module + "/internal/proxy", "net/http"}, "live only fans flows out to viewers", nil},
	// Stores keep flows: they import the vocabulary and nothing above it,
	// and never each other (storetest is the one contract they share).
	{"internal/store/sqlite", storeForbidden("sqlite"), "stores only keep flows", nil},
	{"internal/store/mem", storeForbidden("mem"), "stores only keep flows", nil},
	{"internal/store/postgres", storeForbidden("postgres"), "stores only keep flows", nil},
	{"internal/store/storetest", storeForbidden("storetest"), "the conformance suite tests the flow.Store interface, not an implementation", nil},
}

// storeForbidden is everything of the project a store (or the store suite)
// name must not import: the other stores and every package above flow.
func storeForbidden(name string) []string {
	var out []string
	for _, p := range []string{"catalog", "timeline", "report", "proxy", "importer/", "sim", "testutil"} {
		out = append(out, module+"/internal/"+p)
	}
	for _, other := range []string{"sqlite", "mem", "postgres", "storetest"} {
		if other != name && !(name != "storetest" && other == "storetest") {
			out = append(out, module+"/internal/store/"+other)
		}
	}
	return out
}

// importers: packages that only the programs may import (cmd/pilotwire,
// and the bench tools that measure the same code paths). They are the top
// of the house: a store is chosen, a session found and a report rendered in
// cmd (later also in web), never inside another package, so the layers
// below stay usable without them.
var importers = []struct {
	pkg     string
	allowed []string // importing packages, as prefixes
	why     string
}{
	{"internal/store/sqlite", []string{"cmd/", "bench/"}, "a concrete store is chosen where flags are read; everything else takes a flow.Store"},
	{"internal/store/mem", []string{"cmd/", "bench/"}, "a concrete store is chosen where flags are read; everything else takes a flow.Store"},
	{"internal/store/postgres", []string{"cmd/", "bench/"}, "a concrete store is chosen where flags are read; everything else takes a flow.Store"},
	// /metrics is a view too: it observes finished sessions' phases.
	{"internal/session", []string{"cmd/", "bench/", "internal/web", "internal/metrics"}, "session is the pipeline the views call; nothing below a view calls it"},
	{"internal/report", []string{"cmd/", "bench/", "internal/web"}, "rendering is the last step, called by the views only"},
}

// violations checks go list lines ("importpath import import ...") against
// rules and importers, and returns what breaks them and how many packages
// a rule applied to.
func violations(lines []string) (bad []string, checked int) {
	for _, line := range lines {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, imports := strings.TrimPrefix(fields[0], module+"/"), fields[1:]
		for _, r := range rules {
			if pkg != r.pkg && !strings.HasPrefix(pkg, r.pkg+"/") {
				continue
			}
			checked++
			for _, imp := range imports {
				if slices.Contains(r.except, imp) {
					continue
				}
				for _, f := range r.forbidden {
					if imp == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(imp, f)) {
						bad = append(bad, fmt.Sprintf("%s imports %s: %s", pkg, imp, r.why))
					}
				}
			}
		}
		for _, imp := range imports {
			for _, r := range importers {
				if imp != module+"/"+r.pkg {
					continue
				}
				ok := false
				for _, a := range r.allowed {
					ok = ok || strings.HasPrefix(pkg, a)
				}
				if !ok {
					bad = append(bad, fmt.Sprintf("%s imports %s, which only %s may import: %s", pkg, r.pkg, strings.Join(r.allowed, ", "), r.why))
				}
			}
		}
	}
	return bad, checked
}

// TestLayoutRulesCatch: the checker finds each kind of break in made-up
// go list output, so a rule cannot pass by never matching.
func TestLayoutRulesCatch(t *testing.T) {
	m := module + "/internal/"
	bad, checked := violations([]string{
		m + "flow " + m + "catalog " + m + "pattern",
		m + "pattern " + m + "flow",
		m + "session " + m + "report " + m + "timeline",
		m + "store/mem " + m + "store/sqlite",
		m + "timeline " + m + "store/mem",
		m + "catalog " + m + "session",
		module + "/cmd/pilotwire " + m + "session " + m + "report " + m + "store/mem",
	})
	want := []string{
		"internal/flow imports " + m + "catalog: flow is the shared vocabulary and must stay dependency-free (the pattern language aside)",
		"internal/pattern imports " + m + "flow: the host-pattern language is a leaf that every part, flow included, may use",
		"internal/session imports " + m + "report: session finds sessions and hands out flows; it renders nothing and reads stores through flow.Store",
		"internal/session imports internal/report, which only cmd/, bench/, internal/web may import: rendering is the last step, called by the views only",
		"internal/store/mem imports " + m + "store/sqlite: stores only keep flows",
		"internal/store/mem imports internal/store/sqlite, which only cmd/, bench/ may import: a concrete store is chosen where flags are read; everything else takes a flow.Store",
		"internal/timeline imports " + m + "store/mem: the timeline is pure functions over flows",
		"internal/timeline imports internal/store/mem, which only cmd/, bench/ may import: a concrete store is chosen where flags are read; everything else takes a flow.Store",
		"internal/catalog imports internal/session, which only cmd/, bench/, internal/web, internal/metrics may import: session is the pipeline the views call; nothing below a view calls it",
	}
	if got := strings.Join(bad, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if checked != 7 {
		t.Errorf("rules applied to %d packages, want 7 (flow, pattern, session, store/mem, timeline twice, catalog)", checked)
	}
}

func TestImportLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	bad, checked := violations(strings.Split(strings.TrimSpace(string(out)), "\n"))
	for _, b := range bad {
		t.Error(b)
	}
	if checked < 2 {
		t.Fatalf("checked only %d packages: is go list finding the module?", checked)
	}
}

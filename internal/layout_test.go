// Package internal_test pins which of pilotwire's packages may import which,
// so the layout in DESIGN.md stays true as the code grows.
package internal_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/pilotwire/pilotwire"

// rules: for each package (prefix), the imports it must not have. A rule
// ending in "/" forbids every package under it.
var rules = []struct {
	pkg       string
	forbidden []string
	why       string
}{
	{"internal/flow", []string{module + "/", "net/http", "database/sql"}, "flow is the shared vocabulary and must stay dependency-free"},
	{"internal/proxy", []string{module + "/internal/catalog", module + "/internal/timeline", module + "/internal/store/", module + "/internal/report", "database/sql"}, "the proxy forwards and records; it knows nothing of meaning or storage"},
	{"internal/catalog", []string{module + "/internal/store/", module + "/internal/proxy", "database/sql", "net/http"}, "the catalog is data and matching only"},
	{"internal/timeline", []string{module + "/internal/store/", module + "/internal/proxy", "database/sql", "net/http", "net"}, "the timeline is pure functions over flows"},
	{"internal/report", []string{module + "/internal/store/", module + "/internal/proxy", "database/sql"}, "report renders; it does not fetch"},
	{"internal/importer", []string{module + "/internal/store/", module + "/internal/catalog", "database/sql"}, "importers turn files into flows, nothing more"},
	{"internal/timeline", []string{module + "/internal/report", module + "/internal/importer/"}, "the timeline computes meaning; rendering and reading files are others' jobs"},
	{"internal/report", []string{module + "/internal/importer/", module + "/internal/catalog", module + "/internal/session"}, "report renders a timeline; it computes no meaning"},
	{"internal/session", []string{module + "/internal/report", module + "/internal/proxy", module + "/internal/store/", "database/sql", "net/http"}, "session finds sessions and hands out flows; it renders nothing and reads stores through flow.Store"},
	// Stores keep flows: they import the vocabulary and nothing above it,
	// and never each other (storetest is the one contract they share).
	{"internal/store/sqlite", storeForbidden("sqlite"), "stores only keep flows"},
	{"internal/store/mem", storeForbidden("mem"), "stores only keep flows"},
	{"internal/store/storetest", storeForbidden("storetest"), "the conformance suite tests the flow.Store interface, not an implementation"},
}

// storeForbidden is everything of the project a store (or the store suite)
// name must not import: the other stores and every package above flow.
func storeForbidden(name string) []string {
	var out []string
	for _, p := range []string{"catalog", "timeline", "report", "proxy", "importer/", "sim", "testutil"} {
		out = append(out, module+"/internal/"+p)
	}
	for _, other := range []string{"sqlite", "mem", "storetest"} {
		if other != name && !(name != "storetest" && other == "storetest") {
			out = append(out, module+"/internal/store/"+other)
		}
	}
	return out
}

func TestImportLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
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
				for _, bad := range r.forbidden {
					if imp == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(imp, bad)) {
						t.Errorf("%s imports %s: %s", pkg, imp, r.why)
					}
				}
			}
		}
	}
	if checked < 2 {
		t.Fatalf("checked only %d packages: is go list finding the module?", checked)
	}
}

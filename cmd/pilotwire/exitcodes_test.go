package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

// exitFixtures are the files the exit-code table runs commands on.
type exitFixtures struct {
	db, emptyDB, dir           string // a store with the seed's flows, a store with none, a directory
	har, emptyHAR, junk, empty string // capture files: good, no entries, not a capture, 0 bytes
	cutPcap, badCatalog        string // a pcap cut inside a packet, a catalog file that is not one
	noEntries                  string // a JSON object with a "log" but no entries
}

func newExitFixtures(t *testing.T) exitFixtures {
	t.Helper()
	dir := t.TempDir()
	f := exitFixtures{db: seedStore(t), emptyDB: filepath.Join(dir, "empty.db"), dir: dir, har: harFile,
		emptyHAR: filepath.Join(dir, "none.har"), junk: filepath.Join(dir, "notes.txt"), empty: filepath.Join(dir, "zero.log"),
		cutPcap: filepath.Join(dir, "cut.pcap"), badCatalog: filepath.Join(dir, "bad.yaml"), noEntries: filepath.Join(dir, "pages.har")}
	st, err := sqlite.Open(t.Context(), f.emptyDB)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	pcap, err := os.ReadFile(pcapFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		f.emptyHAR:   `{"log": {"version": "1.2", "creator": {"name": "x", "version": "1"}, "entries": []}}`,
		f.junk:       "dear support, the device is stuck\n",
		f.noEntries:  `{"log": {"version": "1.2", "pages": [{"id": "p", "x": {"y": {}}}]}}`,
		f.empty:      "",
		f.cutPcap:    string(pcap[:9000]),
		f.badCatalog: "entries:\n  - pattern: a.example\n    service: [autopilot]\n",
	} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestExitCodes is the one rule of README's "Exit codes and messages",
// over every command: 0 success (an empty result too, said on stderr), 1
// failure, 2 a mistake in the command line; data on stdout, warnings,
// progress and errors on stderr.
func TestExitCodes(t *testing.T) {
	f := newExitFixtures(t)
	const none = "" // the stream must be empty
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // in stdout; none: stdout is empty
		stderr string // in stderr; none: stderr is empty
	}{
		{"proxy help", []string{"proxy", "--help"}, 0, "Usage: pilotwire proxy", none},
		{"proxy bad flag", []string{"proxy", "--bogus"}, 2, none, "flag provided but not defined: -bogus"},
		{"proxy extra arg", []string{"proxy", "now"}, 2, none, `proxy: unexpected argument "now"`},

		{"import", []string{"--store", f.db, "import", f.har}, 0, "chrome.har: har, 3 flows", none},
		{"import no flows", []string{"--store", f.db, "import", f.emptyHAR}, 0, "none.har: har, 0 flows (0 new)",
			"pilotwire: " + f.emptyHAR + ": no flows in it, nothing imported"},
		{"import partly read", []string{"--store", f.db, "import", f.cutPcap}, 0, "cut.pcap: pcap, 1 flows (1 new), 0 skipped",
			"pilotwire: " + f.cutPcap + ": partly read: read 1 flow of a 9,000-byte file, then stopped early: pcap: packet 9 at offset 3659 (0xe4b): file ends inside it: unexpected EOF\n"},
		{"import strict", []string{"--store", f.emptyDB, "import", "--strict", f.cutPcap}, 1, none,
			"pilotwire: import " + f.cutPcap + ": not read whole (strict): read 1 flow of a 9,000-byte file, then stopped early: pcap: packet 9 at offset 3659 (0xe4b): file ends inside it: unexpected EOF; nothing stored\n"},
		{"import empty file", []string{"--store", f.db, "import", f.empty}, 1, none, "pilotwire: " + f.empty + " is empty (0 bytes): nothing to read\n"},
		{"import not a capture", []string{"--store", f.db, "import", f.junk}, 1, none, "not a supported format"},
		{"import HAR without entries", []string{"--store", f.db, "import", f.noEntries}, 1, none,
			"pilotwire: import " + f.noEntries + " as har: not a HAR: no log.entries array\n"},
		{"import no file", []string{"--store", f.db, "import"}, 2, none, "import: no file given"},
		{"import bad format", []string{"--store", f.db, "import", "--format", "csv", f.har}, 2, none, `unknown format "csv"`},

		{"flows", []string{"--store", f.db, "flows", "--limit", "1"}, 0, "START", none},
		{"flows empty store", []string{"--store", f.emptyDB, "flows"}, 0, none, "pilotwire: no flows in " + f.emptyDB + " match\n"},
		{"flows no match", []string{"--store", f.db, "flows", "--client", "10.9.9.9"}, 0, none, "no flows in"},
		{"flows store is a directory", []string{"--store", f.dir, "flows"}, 1, none, f.dir},
		{"flows two files", []string{"--store", f.db, "flows", "x.har", "y.har"}, 2, none, `flows: one capture file at most, got ["x.har" "y.har"]`},
		{"flows capture file", []string{"flows", f.har, "--host", "*.google.com", "--limit", "1"}, 0, "google.com", none},
		{"flows capture no match", []string{"flows", f.har, "--host", "*.nowhere.example"}, 0, none, "pilotwire: no flows in " + f.har + " match\n"},
		{"flows partly read", []string{"flows", f.cutPcap}, 0, "bro.org", "partly read: read 1 flow"},
		{"flows strict", []string{"flows", "--strict", f.cutPcap}, 1, none, "not read whole (strict)"},
		{"flows bad time", []string{"--store", f.db, "flows", "--since", "yesterday"}, 2, none, `--since "yesterday"`},

		{"sessions", []string{"--store", f.db, "sessions"}, 0, "10.0.0.23", none},
		{"sessions empty store", []string{"--store", f.emptyDB, "sessions"}, 0, none, "no sessions"},
		{"sessions partly read", []string{"sessions", f.cutPcap}, 0, "#", "partly read: read 1 flow"},
		{"sessions strict", []string{"sessions", "--strict", f.cutPcap}, 1, none, "not read whole (strict)"},
		{"sessions not a capture", []string{"sessions", f.junk}, 1, none, "not a supported format"},
		{"sessions two files", []string{"sessions", f.har, f.har}, 2, none, "one capture file at most"},

		{"report", []string{"--store", f.db, "report"}, 0, "Autopilot", none},
		{"report empty store", []string{"--store", f.emptyDB, "report"}, 0, none,
			"pilotwire: no flows in " + f.emptyDB + ": nothing to report (capture with pilotwire proxy, or read a capture file with pilotwire import FILE)\n"},
		{"report capture without flows", []string{"report", f.emptyHAR}, 0, none, "nothing to report"},
		{"report partly read", []string{"report", f.cutPcap}, 0, "Source: " + f.cutPcap, "partly read: read 1 flow"},
		{"report strict", []string{"report", f.cutPcap, "--strict"}, 1, none, "not read whole (strict)"},
		{"report not a capture", []string{"report", f.junk}, 1, none, "not a supported format"},
		{"report bad format", []string{"--store", f.db, "report", "--format", "pdf"}, 2, none, `--format "pdf"`},

		{"endpoints", []string{"endpoints", "--service", "ncsi"}, 0, "PATTERN", "entries"},
		{"endpoints none match", []string{"endpoints", "--service", "ncsi", "--phase", "office"}, 0, none, "none of the"},
		{"endpoints bad catalog", []string{"--catalog", f.badCatalog, "endpoints"}, 1, none, "bad.yaml:3: service must be a single value, found a list"},
		{"endpoints extra arg", []string{"endpoints", "hosts"}, 2, none, `unknown subcommand "hosts"`},
		{"endpoints lookup", []string{"endpoints", "lookup", "ztd.dds.microsoft.com"}, 0, "autopilot", none},
		{"endpoints lookup bad catalog", []string{"endpoints", "lookup", "--catalog", f.badCatalog, "x.example"}, 1, none, "bad.yaml:3:"},
		{"endpoints lookup no host", []string{"endpoints", "lookup"}, 2, none, "give one or more host names"},
		{"endpoints export", []string{"endpoints", "export", "--service", "ncsi"}, 0, "msftconnecttest.com", none},
		{"endpoints export none match", []string{"endpoints", "export", "--service", "ncsi", "--phase", "office"}, 0, "# ", "the hosts allowlist is empty"},
		{"endpoints export no dir", []string{"endpoints", "export", "-o", filepath.Join(f.dir, "no", "x.txt")}, 1, none, "does not exist"},
		{"endpoints export bad format", []string{"endpoints", "export", "--format", "xls"}, 2, none, `--format "xls"`},
		{"endpoints observed", []string{"--store", f.db, "endpoints", "observed"}, 0, "FIRST SEEN", "hosts from"},
		{"endpoints observed empty store", []string{"--store", f.emptyDB, "endpoints", "observed"}, 0, none, "no hosts in"},
		{"endpoints observed empty allowlist", []string{"--store", f.emptyDB, "endpoints", "observed", "--format", "squid"}, 0, "# ", "the squid allowlist is empty"},
		{"endpoints observed not a capture", []string{"endpoints", "observed", f.junk}, 1, none, "not a supported format"},
		{"endpoints observed bad format", []string{"endpoints", "observed", "--format", "xls"}, 2, none, `--format "xls"`},
		{"endpoints services", []string{"endpoints", "services"}, 0, "autopilot", none},
		{"endpoints merge-ms missing file", []string{"endpoints", "merge-ms", filepath.Join(f.dir, "nope.json")}, 1, none, "nope.json"},
		{"endpoints merge-ms no file", []string{"endpoints", "merge-ms"}, 2, none, "got 0 files"},

		{"version", []string{"version"}, 0, "pilotwire dev\n", none},
		{"version extra arg", []string{"version", "2"}, 2, none, `version: unexpected argument "2"`},
		{"help", []string{"help"}, 0, "Commands:", none},
		{"help of a command", []string{"help", "import"}, 0, "Usage: pilotwire import", none},
		{"no command", nil, 2, none, "no command given"},
		{"unknown command", []string{"frobnicate"}, 2, none, `unknown command "frobnicate"`},
		{"bad global flag", []string{"--stroe", "x", "flows"}, 2, none, "flag provided but not defined: -stroe"},
		{"missing flag value", []string{"flows", "--store"}, 2, none, "flag needs an argument: -store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := pw(t, tt.args...)
			if code != tt.code {
				t.Errorf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", tt.args, code, tt.code, out, stderr)
			}
			check := func(stream, got, want string) {
				if want == none && got != "" {
					t.Errorf("%q: %s should be empty, holds %q", tt.args, stream, got)
				}
				if want != none && !strings.Contains(got, want) {
					t.Errorf("%q: %s lacks %q:\n%s", tt.args, stream, want, got)
				}
			}
			check("stdout", out, tt.stdout)
			check("stderr", stderr, tt.stderr)
		})
	}
}

// TestGlobalFlagsEverywhere: --store and --catalog, which every --help
// lists, are taken after the command, after a subcommand, between a
// command and its subcommand, and after positional arguments; and a flag
// is never taken for a file name.
func TestGlobalFlagsEverywhere(t *testing.T) {
	dir := t.TempDir()
	db := seedStore(t)
	mine := filepath.Join(dir, "mine.yaml")
	catalogFile := "services:\n  - {id: lab, name: Lab services}\n" +
		"entries:\n  - {pattern: proxy.lab.example, service: lab, phase: network-up, purpose: lab proxy}\n" +
		"  - {pattern: ztd.dds.microsoft.com, service: lab, phase: profile, purpose: mine now}\n"
	if err := os.WriteFile(mine, []byte(catalogFile), 0o644); err != nil {
		t.Fatal(err)
	}
	newDB := filepath.Join(dir, "new.db")
	msFile := "../../internal/catalog/testdata/ms-endpoints.json"
	tests := []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"import", harFile, "--store", newDB}, "chrome.har: har, 3 flows (3 new)"},
		{[]string{"import", "--store", newDB, harFile, "--format", "har"}, "chrome.har: har, 3 flows (0 new)"},
		{[]string{"flows", "--store", db, "--limit", "1"}, "login.live.com"},
		{[]string{"sessions", "--store", db}, "10.0.0.23"},
		{[]string{"sessions", seedExample, "--store", filepath.Join(dir, "unused.db")}, "10.0.0.23"},
		{[]string{"report", "--store", db, "--catalog", mine}, "Lab services"},
		{[]string{"report", seedExample, "--catalog", mine}, "Lab services"},
		{[]string{"endpoints", "--catalog", mine, "--service", "lab"}, "proxy.lab.example"},
		{[]string{"endpoints", "--catalog", mine, "lookup", "proxy.lab.example"}, "lab proxy"},
		{[]string{"endpoints", "--catalog=" + mine, "lookup", "proxy.lab.example"}, "lab proxy"},
		{[]string{"endpoints", "lookup", "proxy.lab.example", "--catalog", mine}, "lab proxy"},
		{[]string{"endpoints", "export", "--catalog", mine, "--service", "lab"}, "proxy.lab.example"},
		{[]string{"endpoints", "--catalog", mine, "export", "--service", "lab"}, "proxy.lab.example"},
		{[]string{"endpoints", "services", "--catalog", mine}, "Lab services"},
		{[]string{"endpoints", "observed", "--store", db, "--catalog", mine}, "lab"},
		{[]string{"endpoints", "--store", db, "observed", "--catalog", mine}, "lab"},
		{[]string{"endpoints", "observed", seedExample, "--catalog", mine}, "lab"},
		{[]string{"endpoints", "merge-ms", msFile, "--catalog", mine}, "entries:"},
		{[]string{"version", "--store", db}, "pilotwire dev"},
		{[]string{"proxy", "--store", db, "--help"}, "-store PATH"},
	}
	for _, tt := range tests {
		out, stderr, code := pw(t, tt.args...)
		if code != 0 || !strings.Contains(out, tt.want) {
			t.Errorf("%q: exit %d, stdout lacks %q:\n%s\nstderr: %s", tt.args, code, tt.want, out, stderr)
		}
	}
	if n := len(storeFlows(t, newDB, flow.Filter{})); n != 3 {
		t.Errorf("import FILE --store %s stored %d flows there, want 3", newDB, n)
	}
	// A flag name is never read as a file: a value-less flag at the end is
	// a usage error, and "--" ends the flags.
	_, stderr, code := pw(t, "--store", newDB, "import", harFile, "--format")
	if code != 2 || !strings.Contains(stderr, "flag needs an argument: -format") {
		t.Errorf("import FILE --format: exit %d, %q", code, stderr)
	}
	_, stderr, code = pw(t, "--store", newDB, "import", "--", "--format")
	if code != 1 || !strings.Contains(stderr, "import --format: open --format: no such file or directory") {
		t.Errorf("import -- --format: exit %d, %q", code, stderr)
	}
}

// TestOutputFileErrors: a -o that cannot be written names the user's file
// and says why, never the temporary file written beside it (a -o that is
// a pipe: TestOutputToFifo).
func TestOutputFileErrors(t *testing.T) {
	dir := t.TempDir()
	db := seedStore(t)
	missing := filepath.Join(dir, "reports", "run3.html")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", db, "report", "--format", "html", "-o", missing},
			"pilotwire: write " + missing + ": directory " + filepath.Join(dir, "reports") + " does not exist\n"},
		{[]string{"--store", db, "report", "-o", dir}, "pilotwire: write " + dir + ": it is a directory; give a file name\n"},
		{[]string{"endpoints", "export", "-o", dir}, "pilotwire: write " + dir + ": it is a directory; give a file name\n"},
	} {
		_, stderr, code := pw(t, tt.args...)
		if code != 1 || stderr != tt.want {
			t.Errorf("%q: exit %d, stderr %q; want 1, %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestImportStrictStoresNothing: import --strict of a damaged file fails
// and leaves the store as it was; without --strict the readable part is
// stored and the damage said on stderr.
func TestImportStrictStoresNothing(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "pilotwire.db")
	var log strings.Builder
	for i := range 6 {
		status := "200"
		if i == 4 {
			status = "2x0"
		}
		fmt.Fprintf(&log, "1700000000.%03d 12 10.0.0.9 TCP_TUNNEL/%s 100 CONNECT x%d.example:443 - HIER_DIRECT/1.2.3.4 -\n", i, status, i)
	}
	access := filepath.Join(dir, "access.log")
	if err := os.WriteFile(access, []byte(log.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := pw(t, "--store", db, "import", "--strict", access)
	want := "pilotwire: import " + access + `: not read whole (strict): read 5 flows of a 558-byte file; skipped 1 damaged part (first: line 5: field 4 (result code/status) "TCP_TUNNEL/2x0": status is not a 3-digit number (a custom logformat? see docs/squid.md)); nothing stored
  skipped line 5: field 4`
	if code != 1 || out != "" || !strings.HasPrefix(stderr, want) {
		t.Errorf("import --strict: exit %d\nstdout: %s\nstderr: %s\nwant: %s", code, out, stderr, want)
	}
	if n := len(storeFlows(t, db, flow.Filter{})); n != 0 {
		t.Errorf("import --strict of a damaged file stored %d flows", n)
	}
	_, stderr, code = pw(t, "--store", db, "import", access)
	if code != 0 || !strings.Contains(stderr, "partly read: read 5 flows of a 558-byte file; skipped 1 damaged part") {
		t.Errorf("import: exit %d, %s", code, stderr)
	}
	if n := len(storeFlows(t, db, flow.Filter{})); n != 5 {
		t.Errorf("import stored %d flows, want 5", n)
	}
	// A whole file imports under --strict as it does without.
	good := filepath.Join(dir, "good.log")
	if err := os.WriteFile(good, []byte(strings.ReplaceAll(log.String(), "2x0", "200")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := pw(t, "--store", db, "import", "--strict", good); code != 0 || !strings.Contains(out, "6 flows (6 new), 0 skipped") {
		t.Errorf("import --strict of a whole file: exit %d\n%s%s", code, out, stderr)
	}
}

// TestImportEndlessZeros: import --format squid /dev/zero gives up after
// 64 MiB with no line in it, naming the offset (it used to run forever).
func TestImportEndlessZeros(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero here")
	}
	db := filepath.Join(t.TempDir(), "pilotwire.db")
	done := make(chan struct{})
	var stderr string
	var code int
	go func() {
		defer close(done)
		_, stderr, code = pw(t, "--store", db, "import", "--format", "squid", "/dev/zero")
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("import --format squid /dev/zero still running after 2 minutes")
	}
	want := "pilotwire: import /dev/zero as squid: offset 67108864: no readable record in 64 MiB (since line 1, offset 0): giving up; is the rest a Squid access.log?\n"
	if code != 1 || !strings.HasPrefix(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr, want)
	}
}

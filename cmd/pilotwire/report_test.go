package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

// seedFixture reconstructs the seed's run (see internal/timeline).
const seedFixture = "../../internal/timeline/testdata/seed.jsonl"

func seedFlows(t *testing.T) []flow.Flow {
	t.Helper()
	fh, err := os.Open(seedFixture)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []flow.Flow
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var f flow.Flow
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatal(err)
		}
		f.ID = 0
		out = append(out, f)
	}
	return out
}

// seedStore makes a store holding the seed's run (client 10.0.0.23), a
// second run of the same device two hours later, and a short session of
// another client in between.
func seedStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pilotwire.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	flows := seedFlows(t)
	var more []flow.Flow
	for i, f := range flows[:20] {
		f.Key = fmt.Sprintf("rerun-%d", i)
		f.Start, f.End = f.Start.Add(2*time.Hour), f.End.Add(2*time.Hour)
		more = append(more, f)
	}
	other := flows[0]
	other.Key, other.Client, other.Device = "other-1", "10.0.0.99", "lab-vm-2"
	other.Start, other.End = other.Start.Add(time.Hour), other.End.Add(time.Hour)
	more = append(more, other)
	if err := st.PutFlows(t.Context(), append(flows, more...)); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestSessionsCommand(t *testing.T) {
	db := seedStore(t)
	out, _, err := runCmd(t, "--store", db, "sessions")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 sessions, got:\n%s", out)
	}
	// Newest first; numbered oldest first.
	for i, want := range []string{`^\s*3\s+10\.0\.0\.23\s+autopilot-vm\s.*\s00:40\s+20\s`, `^\s*2\s+10\.0\.0\.99\s+lab-vm-2\s.*\s00:00\s+1\s`,
		`^\s*1\s+10\.0\.0\.23\s+autopilot-vm\s.*\s20:04\s+145\s`} {
		if !regexp.MustCompile(want).MatchString(lines[i+1]) {
			t.Errorf("line %d = %q, want it to match %s", i+2, lines[i+1], want)
		}
	}

	out, _, err = runCmd(t, "--store", db, "sessions", "--json", "--client", "autopilot-vm")
	if err != nil {
		t.Fatal(err)
	}
	var js []report.SessionJSON
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatal(err)
	}
	if len(js) != 2 || js[0].Number != 3 || js[1].Number != 1 || js[1].Flows != 145 {
		t.Errorf("sessions --json --client autopilot-vm = %+v", js)
	}

	// A gap shorter than the reboot's silence splits the first run.
	out, _, err = runCmd(t, "--store", db, "sessions", "--gap", "20s")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")) - 1; n <= 3 {
		t.Errorf("--gap 20s gave %d sessions, want more than 3", n)
	}
}

func TestReportCommand(t *testing.T) {
	db := seedStore(t)
	// Session 1 is the seed's run; with the seed's clock its lines carry
	// the seed's times.
	out, _, err := runCmd(t, "--store", db, "report", "--session", "1", "--t0", "-10s")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"session 1: autopilot-vm (10.0.0.23)", "00:10  First signs of life", "00:45  Likely reboot",
		"02:10  First Intune check-in", "Intune scale unit MSUA01", "16:19  Third-party content", "20:13  Last flow"} {
		if !strings.Contains(out, want) {
			t.Errorf("report --session 1 lacks %q:\n%s", want, out)
		}
	}
	// Without --t0 offsets count from the first flow.
	out, _, err = runCmd(t, "--store", db, "report", "--session", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\n00:00  First signs of life") || !strings.Contains(out, "\n02:00  First Intune check-in") {
		t.Errorf("report without --t0:\n%s", out)
	}

	// The default is the newest session; --client picks a client's newest.
	out, _, err = runCmd(t, "--store", db, "report", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		SchemaVersion int `json:"schema_version"`
		Session       struct {
			Number int   `json:"number"`
			Flows  int64 `json:"flows"`
		} `json:"session"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SchemaVersion != 1 || doc.Session.Number != 3 || doc.Session.Flows != 20 {
		t.Errorf("default report: %+v, want schema 1, session 3 of 20 flows", doc)
	}
	out, _, err = runCmd(t, "--store", db, "report", "--client", "10.0.0.99", "--format", "markdown")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "# Provisioning timeline, session 2: lab-vm-2 (10.0.0.99)") {
		t.Errorf("report --client 10.0.0.99 --format markdown:\n%s", out)
	}

	// --rules replaces the built-in milestone rules.
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(rules, []byte("version: 1\nmilestones: [{id: mdm, title: MDM seen, match: [{hosts: ['*.manage.microsoft.com']}]}]\n"+
		"phases: [{id: all, name: Everything, start: [session-start]}]\n"), 0o644)
	out, _, err = runCmd(t, "--store", db, "report", "--session", "1", "--rules", rules)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\n01:50  MDM seen — portal.manage.microsoft.com") || strings.Contains(out, "First signs of life") {
		t.Errorf("report --rules:\n%s", out)
	}

	// -o writes a file.
	html := filepath.Join(t.TempDir(), "run1.html")
	if _, _, err := runCmd(t, "--store", db, "report", "--session", "1", "--format", "html", "-o", html); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(html)
	if err != nil || !bytes.HasPrefix(b, []byte("<!DOCTYPE html>")) || !bytes.Contains(b, []byte(`id="swimlane"`)) {
		t.Errorf("report -o %s: %v, %.80q", html, err, b)
	}
}

func TestReportCommandErrors(t *testing.T) {
	db := seedStore(t)
	for _, tt := range []struct {
		args []string
		want string // in the error
		code int
	}{
		{[]string{"--store", db, "report", "--session", "9"}, "sessions 1 to 3", 2},
		{[]string{"--store", db, "report", "--format", "pdf"}, `--format "pdf"`, 2},
		{[]string{"--store", db, "report", "--t0", "yesterday"}, `--t0 "yesterday"`, 2},
		{[]string{"--store", db, "report", "--client", "10.9.9.9"}, "no sessions of 10.9.9.9", 1},
		{[]string{"--store", db, "report", "--session", "2", "--client", "10.0.0.23"}, "belongs to 10.0.0.99", 2},
		{[]string{"--store", db, "report", "--gap", "0s"}, "--gap", 2},
		{[]string{"--store", db, "report", "no-such-file.har"}, "no-such-file.har", 1},
		{[]string{"--store", db, "report", "--rules", "no-such-rules.yaml"}, "no-such-rules.yaml", 1},
		{[]string{"--store", db, "report", "--rules", seedFixture}, "seed.jsonl", 1},
	} {
		_, _, err := runCmd(t, tt.args...)
		var stderr bytes.Buffer
		code := exitCode(err, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) || code != tt.code {
			t.Errorf("%q: error %v (exit %d), want one containing %q (exit %d)", tt.args, err, code, tt.want, tt.code)
		}
	}
}

// TestReportFromCaptureFile: a capture file reports without any store. The
// seed's run written as a Squid access.log gives the same milestones.
func TestReportFromCaptureFile(t *testing.T) {
	path := seedExample
	noStore := filepath.Join(t.TempDir(), "never-created.db")
	out, _, err := runCmd(t, "--store", noStore, "report", path, "--t0", "-10s")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"00:10  First signs of life", "00:12  Autopilot profile download", "00:45  Likely reboot",
		"01:28  Entra ID sign-in", "02:01  Intune enrollment", "02:10  First Intune check-in", "02:56  Office download",
		"11:39  Trusted root list refresh", "16:19  Third-party content", "Source: " + path} {
		if !strings.Contains(out, want) {
			t.Errorf("report %s lacks %q:\n%s", path, want, out)
		}
	}
	if _, err := os.Stat(noStore); err == nil {
		t.Errorf("reporting a capture file created the store %s", noStore)
	}
	out, _, err = runCmd(t, "--store", noStore, "sessions", path)
	if err != nil || !strings.Contains(out, "10.0.0.23") {
		t.Errorf("sessions %s: %v\n%s", path, err, out)
	}
}

// TestReportSameStart: two devices whose sessions start at the same
// instant are numbered by client; the report of each must hold its own
// flows, whichever order the store returned them in.
func TestReportSameStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pilotwire.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var flows []flow.Flow
	for i, c := range []string{"10.0.0.9", "10.0.0.10"} {
		for j := 0; j <= i; j++ { // 10.0.0.9 has 1 flow, 10.0.0.10 has 2
			s := start.Add(time.Duration(j) * time.Second)
			flows = append(flows, flow.Flow{Key: fmt.Sprintf("%s-%d", c, j), Start: s, End: s.Add(time.Second), Client: c,
				Kind: flow.KindConnect, Host: "login.live.com", Port: 443, Source: flow.SourceProxy})
		}
	}
	if err := st.PutFlows(t.Context(), flows); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, tt := range []struct {
		session, client string
		flows           int
	}{{"1", "10.0.0.10", 2}, {"2", "10.0.0.9", 1}} {
		out, _, err := runCmd(t, "--store", path, "report", "--session", tt.session, "--format", "json")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Session struct {
				Client string `json:"client"`
				Flows  int    `json:"flows"`
			} `json:"session"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Session.Client != tt.client || doc.Session.Flows != tt.flows {
			t.Errorf("session %s: %+v, want client %s with %d flows", tt.session, doc.Session, tt.client, tt.flows)
		}
	}
}

// TestReportClientNotFound: a client with no session is flow.ErrNotFound,
// which callers test for, not only a message.
func TestReportClientNotFound(t *testing.T) {
	_, _, err := runCmd(t, "--store", seedStore(t), "report", "--client", "10.9.9.9")
	if !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("report --client of an unknown client: %v, want flow.ErrNotFound", err)
	}
}

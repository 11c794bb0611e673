package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiffCommand(t *testing.T) {
	db := seedStore(t)
	out, stderr, code := pw(t, "--store", db, "sessions")
	if code != 0 {
		t.Fatalf("sessions: exit %d: %s", code, stderr)
	}
	t.Logf("sessions:\n%s", out)

	// The seed's run against its first 20 flows again two hours later
	// (seedStore): the rerun is shorter, so phases and services change,
	// and it never reached the later milestones.
	out, stderr, code = pw(t, "--store", db, "diff", "1", "3")
	if code != 0 {
		t.Fatalf("diff 1 3: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"A: session 1 (autopilot-vm, 10.0.0.23) of " + db,
		"B: session 3 (autopilot-vm, 10.0.0.23) of " + db,
		"Milestones, most moved first",
		"Teams",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diff 1 3 does not say %q:\n%s", want, out)
		}
	}

	// Flags after the arguments, JSON, and a file written whole.
	path := filepath.Join(t.TempDir(), "d.json")
	if _, stderr, code = pw(t, "--store", db, "diff", "1", "3", "--format", "json", "-o", path); code != 0 {
		t.Fatalf("diff --format json: exit %d: %s", code, stderr)
	}
	var doc struct {
		A, B struct {
			Session struct{ Number int }
		}
		Milestones []struct{ ID, In string }
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("diff JSON: %v", err)
	}
	onlyA := 0
	for _, m := range doc.Milestones {
		if m.In == "a" {
			onlyA++
		}
	}
	if doc.A.Session.Number != 1 || doc.B.Session.Number != 3 || onlyA == 0 {
		t.Errorf("diff JSON: sessions %d and %d, %d milestones only in A; want 1, 3 and some", doc.A.Session.Number, doc.B.Session.Number, onlyA)
	}

	// Straight from two capture files: the newest session of each.
	out, stderr, code = pw(t, "diff", "../../internal/importer/har/testdata/chrome.har", "../../internal/importer/har/testdata/edge.har")
	if code != 0 {
		t.Fatalf("diff of two HAR files: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"A does not look like Autopilot provisioning", "www.google.com              unknown  7.0 KiB  only in A"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff of two HAR files does not say %q:\n%s", want, out)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"diff", "1"}, 2, "diff: give two sessions"},
		{[]string{"diff", "1", "99"}, 2, "session 99"},
		{[]string{"diff", "0", "1"}, 2, "session numbers start at 1"},
		{[]string{"diff", "1", "3", "--format", "pdf"}, 2, `--format "pdf"`},
		{[]string{"diff", "1", filepath.Join(t.TempDir(), "missing.har")}, 1, "missing.har"},
	} {
		_, stderr, code := pw(t, append([]string{"--store", db}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d saying %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
}

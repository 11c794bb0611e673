package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/har"
)

func TestExportCommand(t *testing.T) {
	db := seedStore(t)
	path := filepath.Join(t.TempDir(), "run1.har")
	// Flags after the positional-free command, the file written whole.
	_, stderr, code := pw(t, "--store", db, "export", "--session", "1", "-o", path)
	if code != 0 || !strings.Contains(stderr, "session 1 (145 flows) written to "+path) {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	if err := har.Read(t.Context(), f, func(flow.Flow) error { n++; return nil }, func(w string, err error) { t.Errorf("%s: %v", w, err) }); err != nil {
		t.Fatal(err)
	}
	if n != 145 {
		t.Errorf("the HAR re-imports to %d flows, want 145", n)
	}
	// The HAR re-imports through the command too, and a session of it
	// exports again.
	out, stderr, code := pw(t, "export", path)
	if code != 0 || !strings.HasPrefix(out, `{"log":{"version":"1.2","creator":{"name":"pilotwire"`) {
		t.Errorf("export of a HAR file: exit %d %s: %.80s", code, stderr, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--store", db, "export", "--format", "csv"}, 2, `--format "csv": want har`},
		{[]string{"--store", db, "export", "--session", "9"}, 2, "--session 9"},
		{[]string{"--store", db, "export", "a.har", "b.har"}, 2, "one capture file at most"},
	} {
		_, stderr, code := pw(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d %q, want %d saying %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
}

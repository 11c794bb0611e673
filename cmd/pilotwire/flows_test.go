package main

import (
	"bufio"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFlowsCommand lists the seed's run with each filter and checks the
// exact counts, in the table and as JSON lines.
func TestFlowsCommand(t *testing.T) {
	db := seedStore(t)
	tests := []struct {
		args []string
		want int
	}{
		// The seed's 145 flows, 20 of them again two hours later, and one
		// flow of a second device (seedStore).
		{nil, 166},
		{[]string{"--client", "10.0.0.23"}, 165},
		{[]string{"--client", "lab-vm-2"}, 1},
		{[]string{"--client", "10.9.9.9"}, 0},
		{[]string{"--host", "*.manage.microsoft.com"}, 32},
		{[]string{"--host", "ZTD.dds.microsoft.com"}, 4},
		{[]string{"--host", "ZTD.dds.microsoft.com", "--host", "*.manage.microsoft.com"}, 36}, // any of them
		{[]string{"--host", "ztd.*.com"}, 4},                                                  // a '*' label: one or more labels
		{[]string{"--host", "ztd*.com"}, 0},                                                   // a '*' in a label stays in it
		{[]string{"--text", "ZTD.DDS"}, 4},                                                    // in the host, either case
		{[]string{"--text", "ztd.dds", "--problems"}, 0},
		{[]string{"--problems"}, 2}, // the seed's refused CONNECT and its tunnel without a handshake
		{[]string{"--since", "2019-09-03T15:16:00Z", "--until", "2019-09-03T15:17:00Z"}, 5},
		{[]string{"--limit", "5"}, 5},
	}
	for _, tt := range tests {
		args := append([]string{"--store", db, "flows", "--json"}, tt.args...)
		out, stderr, code := pw(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tt.args, code, stderr)
		}
		n := 0
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%v: line %d is not JSON: %v", tt.args, n+1, err)
			}
			if m["host"] == nil || m["start"] == nil || m["kind"] == nil {
				t.Errorf("%v: line %d lacks host/start/kind: %v", tt.args, n+1, m)
			}
			n++
		}
		if n != tt.want {
			t.Errorf("flows %v: %d JSON lines, want %d", tt.args, n, tt.want)
		}
		table, stderr, code := pw(t, append([]string{"--store", db, "flows"}, tt.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tt.args, code, stderr)
		}
		if rows := max(strings.Count(table, "\n")-1, 0); rows != tt.want {
			t.Errorf("flows %v: %d table rows, want %d", tt.args, rows, tt.want)
		}
	}
}

func TestFlowsTableCutsLongURLs(t *testing.T) {
	db := seedStore(t)
	out, _, err := runCmd(t, "--store", db, "flows", "--host", "ocsp.digicert.com", "--limit", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "...") || strings.Contains(out, "DKA%3D ") == false {
		t.Errorf("long URL not cut in the middle:\n%s", out)
	}
	wide, _, _ := runCmd(t, "--store", db, "flows", "--host", "ocsp.digicert.com", "--limit", "1", "--wide")
	if strings.Contains(wide, "...") {
		t.Errorf("--wide still cuts:\n%s", wide)
	}
}

func TestFlowsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"flows", "--since", "yesterday"}, {"flows", "a.har", "b.har"}, {"flows", "--bogus"}} {
		_, _, err := runCmd(t, args...)
		if err == nil || !strings.Contains(err.Error(), "flows") || exitCode(err, io.Discard) != 2 {
			t.Errorf("%v: error %v, want a usage error naming flows", args, err)
		}
	}
}

// TestFlowsFromCaptureFile: flows over a capture file selects what flows
// over the store holding that file selects, for every filter.
func TestFlowsFromCaptureFile(t *testing.T) {
	db := filepath.Join(t.TempDir(), "pilotwire.db")
	if _, stderr, code := pw(t, "--store", db, "import", seedExample); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	dropIDs := regexp.MustCompile(`"id":\d+,`)
	for _, args := range [][]string{
		{"--newest", "--limit", "5"},
		{"--host", "*.manage.microsoft.com"},
		{"--host", "login.microsoftonline.com", "--newest"},
		{"--since", "2019-09-03T15:10:00Z", "--until", "2019-09-03T15:12:00Z"},
		{"--client", "10.0.0.23", "--limit", "7"},
		{"--source", "har"},
	} {
		fromStore, _, code1 := pw(t, append([]string{"--store", db, "flows", "--json"}, args...)...)
		fromFile, _, code2 := pw(t, append([]string{"flows", "--json", seedExample}, args...)...)
		if code1 != 0 || code2 != 0 || dropIDs.ReplaceAllString(fromStore, "") != dropIDs.ReplaceAllString(fromFile, "") {
			t.Errorf("flows %q: exit %d and %d\nstore:\n%s\nfile:\n%s", args, code1, code2, fromStore, fromFile)
		}
	}
}

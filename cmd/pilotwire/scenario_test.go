package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/scenario"
)

func TestScenarioCommand(t *testing.T) {
	db := seedStore(t)
	out, stderr, code := pw(t, "scenario", "list")
	if code != 0 || !strings.Contains(out, "\nuser-driven          145 steps, 20:03") || strings.Count(out, "\n") != 4 {
		t.Errorf("scenario list: exit %d %s\n%s", code, stderr, out)
	}
	path := filepath.Join(t.TempDir(), "lab.yaml")
	_, stderr, code = pw(t, "--store", db, "scenario", "from-session", "1", "-o", path)
	if code != 0 || !strings.Contains(stderr, "145 steps written to "+path) {
		t.Fatalf("from-session: exit %d %s", code, stderr)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenario.Parse(path, data)
	if err != nil || len(sc.Steps) != 145 || sc.Device != "autopilot-vm" {
		t.Fatalf("the scenario written does not read back: %v", err)
	}
	// The built-in user-driven scenario is the seed's run: the same steps.
	builtin, _ := scenario.Load("user-driven", os.ReadFile)
	for i := range builtin.Steps {
		a, b := builtin.Steps[i], sc.Steps[i]
		a.Line, b.Line = 0, 0
		if a != b {
			t.Fatalf("step %d: %+v, the built-in scenario has %+v", i+1, b, a)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"scenario"}, 2, "give a subcommand"},
		{[]string{"scenario", "play"}, 2, `unknown subcommand "play"`},
		{[]string{"scenario", "show", "nope"}, 1, `no such built-in scenario (failing-enrollment, pre-provisioning, self-deploying, user-driven) nor file`},
		{[]string{"--store", db, "scenario", "from-session", "7"}, 2, "--session 7"},
	} {
		_, stderr, code := pw(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d %q, want %d saying %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
}

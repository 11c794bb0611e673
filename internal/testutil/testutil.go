// Package testutil holds helpers shared by pilotwire's tests. It is imported
// only from _test.go files.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequireToolsEnv is the environment variable that turns a missing outside
// program into a test failure instead of a skip. CI sets it.
const RequireToolsEnv = "PILOTWIRE_REQUIRE_TOOLS"

// LookPath returns the path of the outside program name. Without it the
// test is skipped, saying why, or fails when RequireToolsEnv is set.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	Missing(t, name+" is not installed (scripts/test installs it as root)")
	return ""
}

// Missing skips the test for reason, or fails it when RequireToolsEnv is set.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireToolsEnv) != "" {
		t.Fatalf("%s; %s is set, so this is a failure", reason, RequireToolsEnv)
	}
	t.Skip(reason)
}

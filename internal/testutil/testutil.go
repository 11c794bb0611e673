// Package testutil holds helpers shared by pilotwire's tests. It is imported
// only from _test.go files.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
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

// ArtifactsEnv names the directory where tests leave files for people to
// look at after the run (screenshots); unset, it is
// os.TempDir()/pilotwire-artifacts.
const ArtifactsEnv = "PILOTWIRE_ARTIFACTS"

// ArtifactDir returns the directory sub of the artifacts directory (see
// ArtifactsEnv), creating it. Artifacts outlive the test on purpose.
func ArtifactDir(t testing.TB, sub string) string {
	t.Helper()
	root := os.Getenv(ArtifactsEnv)
	if root == "" {
		root = filepath.Join(os.TempDir(), "pilotwire-artifacts")
	}
	dir := filepath.Join(root, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return dir
}

// SharedPath returns the path of rel inside ../shared beside the
// repository's root (the project's shared folder: reference documents and
// third-party captures that may not be copied into the repository), and
// whether it exists there.
func SharedPath(t testing.TB, rel ...string) (string, bool) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root (go.mod) not found above the test's directory")
		}
		dir = parent
	}
	p := filepath.Join(append([]string{dir, "..", "shared"}, rel...)...)
	_, err = os.Stat(p)
	return p, err == nil
}

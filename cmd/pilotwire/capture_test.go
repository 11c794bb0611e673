package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCaptureFlagErrors(t *testing.T) {
	dir := t.TempDir()
	exists := filepath.Join(dir, "old.pcapng")
	os.WriteFile(exists, []byte("keep me"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "capture: --interface IF is required"},
		{[]string{"--interface", "pw-nosuch0"}, "capture: --interface pw-nosuch0: route ip+net: no such network interface"},
		{[]string{"--interface", "lo", "--write", exists}, "the file exists; give another name"},
		{[]string{"--interface", "lo", "--flush-interval", "5s"}, "--flush-interval 5s: must be more than 0 and at most 1s"},
		{[]string{"--interface", "lo", "extra"}, `unexpected argument "extra"`},
	} {
		_, _, err := runCmd(t, append([]string{"--store", filepath.Join(dir, "x.db"), "capture"}, tc.args...)...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(exists); string(b) != "keep me" {
		t.Errorf("--write changed an existing file: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
		t.Error("a refused capture created the store")
	}
}

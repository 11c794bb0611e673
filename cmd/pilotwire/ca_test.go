package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/ca"
)

func TestCACommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab-ca")
	t.Setenv(ca.EnvDir, dir)
	out, _, err := runCmd(t, "ca", "show")
	if err == nil || !isEmptyResult(err) || out != "" {
		t.Fatalf("show before init: %v, out %q", err, out)
	}
	if exitCode(err, &bytes.Buffer{}) != 0 {
		t.Errorf("show with no CA: exit %d, want 0 (an empty result)", exitCode(err, &bytes.Buffer{}))
	}

	out, errOut, err := runCmd(t, "ca", "init")
	if err != nil || out != "" || !strings.Contains(errOut, "made \"pilotwire lab CA ") || !strings.Contains(errOut, "certutil -addstore Root pilotwire-root.cer") {
		t.Fatalf("init: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	st, err := os.Stat(filepath.Join(dir, ca.KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, ca.KeyFile))

	// A second init refuses (exit 1) and leaves the key alone.
	_, _, err = runCmd(t, "ca", "init")
	if err == nil || exitCode(err, &bytes.Buffer{}) != 1 || !strings.Contains(err.Error(), "a CA already exists (use --force") {
		t.Fatalf("second init: %v", err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, ca.KeyFile)); !bytes.Equal(again, key) {
		t.Fatal("a refused init changed the key")
	}

	cer := filepath.Join(t.TempDir(), "pilotwire-root.cer")
	if _, _, err := runCmd(t, "ca", "export", "-o", cer); err != nil {
		t.Fatal(err)
	}
	der, _ := os.ReadFile(cer)
	root, err := x509.ParseCertificate(der)
	if err != nil || !root.IsCA {
		t.Fatalf("export wrote no DER CA certificate: %v", err)
	}
	out, _, err = runCmd(t, "ca", "export", "--pem", "-o", "-")
	b, _ := pem.Decode([]byte(out))
	if err != nil || b == nil || !bytes.Equal(b.Bytes, der) {
		t.Fatalf("export --pem -o -: %v, %q", err, out)
	}
	if strings.Contains(out, "PRIVATE") || bytes.Contains(der, key) {
		t.Fatal("export carries the key")
	}

	out, _, err = runCmd(t, "ca", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`(?m)^name: +pilotwire lab CA \S+ \d{4}-\d\d-\d\d$`, `(?m)^directory: +` + regexp.QuoteMeta(dir) + `$`,
		`(?m)^sha256: +[0-9A-F]{64}$`, `certutil -addstore Root pilotwire-root.cer`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("show output does not match %s:\n%s", want, out)
		}
	}

	// --ca-dir wins over the environment; --force replaces.
	other := filepath.Join(t.TempDir(), "other")
	if _, _, err := runCmd(t, "ca", "init", "--ca-dir", other); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(other, ca.CertFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, "ca", "init", "--force"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, ca.KeyFile)); bytes.Equal(again, key) {
		t.Fatal("--force kept the key")
	}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"ca"}, "ca: no subcommand given"},
		{[]string{"ca", "sign"}, `ca: unknown subcommand "sign"`},
		{[]string{"ca", "export"}, "ca export: -o FILE is required"},
		{[]string{"ca", "show", "x"}, `ca show: unexpected argument "x"`},
	} {
		_, _, err := runCmd(t, tc.args...)
		if err == nil || exitCode(err, &bytes.Buffer{}) != 2 || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: %v, want usage error %q", tc.args, err, tc.msg)
		}
	}
}

func isEmptyResult(err error) bool {
	_, ok := err.(emptyResult)
	return ok
}

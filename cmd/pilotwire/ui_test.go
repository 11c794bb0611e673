package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUITokenGate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	short := filepath.Join(dir, "short")
	os.WriteFile(good, []byte(strings.Repeat("ab", 16)+"\n"), 0o600)
	os.WriteFile(short, []byte("secret\n"), 0o600)
	for _, tc := range []struct {
		addr, file, env string
		token, err      string
	}{
		{addr: "127.0.0.1:8081"},
		{addr: "[::1]:8081"},
		{addr: "localhost:8081"},
		{addr: ":8081", err: "--ui :8081 listens beyond loopback"},
		{addr: "0.0.0.0:8081", err: "listens beyond loopback"},
		{addr: "10.0.0.1:8081", err: "give a token with --ui-token-file FILE or $PILOTWIRE_UI_TOKEN"},
		{addr: ":8081", file: good, token: strings.Repeat("ab", 16)},
		{addr: ":8081", env: strings.Repeat("cd", 16), token: strings.Repeat("cd", 16)},
		{addr: "127.0.0.1:8081", file: short, err: "the token in " + short + " is 6 characters; use at least 32"},
		{addr: ":8081", file: filepath.Join(dir, "missing"), err: "--ui-token-file: open " + filepath.Join(dir, "missing")},
	} {
		t.Setenv(tokenEnv, tc.env)
		u := uiFlags{addr: tc.addr, tokenFile: tc.file}
		tok, err := u.token("serve")
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%+v: %v", tc, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: error %v, want one saying %q", tc, err, tc.err)
		case tok != tc.token:
			t.Errorf("%+v: token %q, want %q", tc, tok, tc.token)
		}
		if _, usage := err.(usageError); err != nil && !usage {
			t.Errorf("%+v: %v is not a usage error (exit 2)", tc, err)
		}
	}
}

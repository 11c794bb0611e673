package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/testutil"
)

// proxy --intercept --bodies: curl's request bodies (HTTP/1.1 and /2) and
// the answers are kept up to the size asked, a gzip answer is shown
// decoded, sign-in bodies are never kept, and flows shows them only with
// --bodies.
func TestProxyInterceptBodies(t *testing.T) {
	curl := testutil.LookPath(t, "curl")
	withStandIn(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "flows.db")
	caDir, pemFile, lab := labCA(t, dir)
	big := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 2000)), 0o600); err != nil {
		t.Fatal(err)
	}

	addr, banner, stop := startInProcess(t, "--store", store, "--intercept", "--ca-dir", caDir, "--bodies", "1KiB")
	if b := strings.Join(banner, "\n"); !strings.Contains(b, "    BODIES KEPT: the first 1.0 KiB of each request's and response's body (none for 11 catalog entries marked no-bodies)") {
		t.Errorf("banner:\n%s", b)
	}
	for _, c := range [][]string{
		{"--http1.1", "-d", "hello=world", "https://ztd.dds.microsoft.com/autopilot/register"},
		{"--http2", "--data-binary", "@" + big, "https://cs.dds.microsoft.com/upload"},
		{"--http2", "-d", "password=hunter2", "https://login.microsoftonline.com/common/oauth2/token"},
	} {
		args := append([]string{"-sS", "-o", "/dev/null", "--cacert", pemFile, "--proxy", "http://" + addr}, c...)
		if out, err := exec.CommandContext(t.Context(), curl, args...).CombinedOutput(); err != nil {
			t.Fatalf("curl %q: %v: %s", c, err, out)
		}
	}
	if err := get(trusting(t, addr, lab), "https://ztd.dds.microsoft.com/gz"); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	out, _, err := runCmd(t, "--store", store, "flows", "--bodies", "--host", "*.dds.microsoft.com", "--host", "login.microsoftonline.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"    > request body, 11 bytes:\n      hello=world\n    < response body, 30 bytes:\n      {\"path\":\"/autopilot/register\"}\n",
		"    > request body, the first 1024 of 2000 bytes:\n      " + strings.Repeat("x", 1024) + "\n    < response body, 18 bytes:\n      {\"path\":\"/upload\"}\n",
		", 50 bytes, gzip, 900 bytes decoded:\n      compressed answer\n      compressed answer\n",
		"bodies not kept: Requests and answers carry passwords, sign-in codes and access tokens",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("flows --bodies lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("a sign-in body was kept:\n%s", out)
	}

	out, _, err = runCmd(t, "--store", store, "flows", "--bodies", "--json", "--host", "ztd.dds.microsoft.com", "--text", "register")
	if err != nil {
		t.Fatal(err)
	}
	var row struct {
		Request  map[string]any `json:"request_body"`
		Response map[string]any `json:"response_body"`
	}
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &row); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if row.Request["text"] != "hello=world" || row.Request["complete"] != true || row.Response["kept"] != 30.0 {
		t.Errorf("flows --bodies --json: %+v", row)
	}

	// Without --bodies, nothing of them.
	for _, args := range [][]string{{"flows"}, {"flows", "--json"}} {
		out, _, err := runCmd(t, append([]string{"--store", store}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "hello=world") || strings.Contains(out, "request_body") || strings.Contains(out, "request body") {
			t.Errorf("%v shows bodies:\n%s", args, out)
		}
	}

	// The HAR export: headers always, bodies with --bodies.
	for _, withBodies := range []bool{false, true} {
		args := []string{"--store", store, "export"}
		if withBodies {
			args = append(args, "--bodies")
		}
		har, _, err := runCmd(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(har, `{"name":"User-Agent","value":"curl/`) || strings.Contains(har, `"text":"hello=world"`) != withBodies ||
			strings.Contains(har, "hunter2") {
			t.Errorf("export (bodies %v):\n%.2000s", withBodies, har)
		}
	}

	// --bodies needs --intercept, and a size.
	for _, args := range [][]string{
		{"proxy", "--bodies", "64KiB"},
		{"proxy", "--intercept", "--bodies", "lots"},
		{"proxy", "--intercept", "--bodies", "65GiB"},
		{"proxy", "--intercept", "--bodies", "100MiB"},
	} {
		_, stderr, err := runCmd(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: %v (%s), want a usage error", args, err, stderr)
		}
	}
}

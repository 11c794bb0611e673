package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/check"
	"github.com/pilotwire/pilotwire/internal/sim"
)

// TestReportAgainst: the seed's run against an allowlist of a few
// Microsoft domains names the hosts it leaves out, those that stop
// provisioning first, the milestones lost and the phases hit; the required export never denies
// anything of the seed's run that the catalog marks required.
func TestReportAgainst(t *testing.T) {
	db := seedStore(t)
	dir := t.TempDir()
	allow := filepath.Join(dir, "allow.txt")
	os.WriteFile(allow, []byte("# everything but Intune\n.microsoft.com\n.windows.net\n.microsoftonline.com\n.windowsupdate.com\n.msftconnecttest.com\n"), 0o644)
	stdout, _, err := runCmd(t, "--store", db, "report", "--session", "1", "--against", allow)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(stdout, "\n")
	if !strings.HasSuffix(lines[0], "19 hosts (64 flows) would have been denied.") || lines[1] != "Phases hit: OOBE and Autopilot, Entra join, Device ESP" {
		t.Errorf("head:\n%s", stdout)
	}
	stop := strings.Index(stdout, "Provisioning would stop or go wrong:")
	also := strings.Index(stdout, "Would also be denied:")
	if stop < 0 || also < stop {
		t.Errorf("stoppers not first:\n%s", stdout)
	}
	for _, want := range []string{
		// Entra ID sign-in still happens (other hosts show it): no "blocks".
		"  01:18  aadcdn.msauth.net (Entra ID sign-in and join): not in allowlist " + allow + ", 1 flow; hurts Entra join\n",
		"  16:20  oem-agent.contoso-devices.example (Not in the catalog): not in allowlist " + allow + ", 1 flow\n",
		"\nMilestones of the capture that would not have happened:\n  00:00  Autopilot registration lookup\n  02:48  Intune Management Extension content\n" +
			"  03:12  Push notifications (WNS)\n  03:41  OneDrive\n  03:57  Win32 app content\n  16:09  Third-party content\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}

	// The catalog's own required export (hosts and Squid formats) denies
	// no host of the run that the catalog marks required.
	cat := catalog.Default()
	entries, _ := cat.Select(catalog.Selection{Required: []catalog.Required{catalog.RequiredYes}})
	for _, format := range []string{"hosts", "squid"} {
		var buf bytes.Buffer
		cat.Export(&buf, format, entries, catalog.ExportOptions{})
		path := filepath.Join(dir, "required."+format)
		os.WriteFile(path, buf.Bytes(), 0o644)
		stdout, _, err := runCmd(t, "--store", db, "report", "--session", "1", "--against", path)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(stdout, "\n") {
			if !strings.HasPrefix(l, "  ") || strings.Contains(l, "Milestones") {
				continue
			}
			host := strings.Fields(l)[1]
			if m, ok := cat.Lookup(host); ok && m.Entry.Required == catalog.RequiredYes {
				t.Errorf("%s export denies required host %s: %s", format, host, l)
			}
		}
	}
}

// TestCheckExitCodes: the check command over the stand-in internet: 0 and
// READY when every host answers, 1 and NOT READY when some do not, 2 for
// mistakes in the command line and set-up.
func TestCheckExitCodes(t *testing.T) {
	in, err := sim.New()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	in.AddHTTPS("ztd.dds.microsoft.com", 443, ok)
	in.AddHTTPS("cs.dds.microsoft.com", 443, ok)
	checkNetwork = func(o *check.Options) { o.Resolve, o.Dial, o.RootCAs = in.Resolve, in.Dial, in.CertPool() }
	defer func() { checkNetwork = nil }()
	dir := t.TempDir()
	cred := filepath.Join(dir, "cred.txt")
	os.WriteFile(cred, []byte("nocolon\n"), 0o600)
	cases := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"--phase", "profile"}, 0, "READY: all 2 hosts reachable directly\n", ""},
		{[]string{"--phase", "profile", "--phase", "activation", "--timeout", "200ms"}, 1, "NOT READY: ", "pilotwire: NOT READY: "},
		{[]string{"--format", "xml"}, 2, "", `pilotwire: check: --format "xml": want table, json, markdown`},
		{[]string{"--proxy", "http://user:pw@proxy:8080"}, 2, "", "credentials go in --proxy-auth-file, never on the command line"},
		{[]string{"--proxy-auth-file", cred}, 2, "", "pilotwire: check: --proxy-auth-file needs --proxy"},
		{[]string{"--proxy", "http://127.0.0.1:1", "--proxy-auth-file", cred}, 2, "", "want one line USER:PASS"},
		{[]string{"--phase", "nope"}, 2, "", `unknown phase "nope"`},
		{[]string{"extra"}, 2, "", `check: unexpected argument "extra"`},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"check"}, tc.args...), &stdout, &stderr)
		code := exitCode(err, &stderr)
		if code != tc.code || !strings.HasPrefix(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("check %v: exit %d, stdout %q, stderr %q; want %d, %q…, …%q…", tc.args, code, firstLine(stdout.String()), stderr.String(), tc.code, tc.out, tc.err)
		}
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// TestProxyEnforceFile: a bad allowlist stops the proxy before it
// listens, naming the file and line.
func TestProxyEnforceFile(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "allow.txt")
	os.WriteFile(bad, []byte("ok.example\nnot a host\n"), 0o644)
	err := run(context.Background(), []string{"--store", filepath.Join(t.TempDir(), "x.db"), "proxy", "--listen", "127.0.0.1:0", "--ui", "", "--enforce", bad}, io.Discard, io.Discard)
	want := fmt.Sprintf(`allowlist %s:2: "not a host": one host pattern a line (comments start the line with '#')`, bad)
	if exitCode(err, io.Discard) != 1 || err.Error() != want {
		t.Errorf("err %v, want %s", err, want)
	}
}

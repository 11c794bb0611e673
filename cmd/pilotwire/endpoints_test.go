package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

// pw runs the command line and returns stdout, stderr and the exit status.
func pw(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code := exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestEndpointsLookup(t *testing.T) {
	out, _, code := pw(t, "endpoints", "lookup", "fef.msua01.manage.microsoft.com", "OCSP.digicert.com:80", "evil.example",
		"manage.microsoft.com.evil.test", "https://ztd.dds.microsoft.com/ztd/v1", "10.0.0.1")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{
		{"HOST", "SERVICE", "PHASE", "REQUIRED", "REGION", "PATTERN", "PURPOSE"},
		{"fef.msua01.manage.microsoft.com", "intune-checkin", "mdm-enrollment", "yes", "MSUA01", "fef.*.manage.microsoft.com"},
		{"OCSP.digicert.com:80", "cert-status", "certificates", "yes", "-", "ocsp.digicert.com"},
		{"evil.example", "unknown", "-", "-", "-", "-", "not"},
		{"manage.microsoft.com.evil.test", "unknown"},
		{"https://ztd.dds.microsoft.com/ztd/v1", "autopilot", "profile", "yes"},
		{"10.0.0.1", "unknown"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for i, w := range want {
		f := strings.Fields(lines[i])
		for j, v := range w {
			if j >= len(f) || f[j] != v {
				t.Errorf("line %d = %q, want fields %q", i, lines[i], w)
				break
			}
		}
	}
	out, _, _ = pw(t, "endpoints", "lookup", "--json", "fef.amsua0602.manage.microsoft.com")
	if !strings.Contains(out, `"region":"AMSUA0602"`) || !strings.Contains(out, `"known":true`) {
		t.Errorf("json: %s", out)
	}
	if _, errs, code := pw(t, "endpoints", "lookup"); code != 2 || !strings.Contains(errs, "give one or more host") {
		t.Errorf("no hosts: %d %s", code, errs)
	}
}

func TestEndpointsList(t *testing.T) {
	cat := catalog.Default()
	tests := []struct {
		args []string
		sel  catalog.Selection
	}{
		{nil, catalog.Selection{}},
		{[]string{"--phase", "mdm-enrollment", "--required"}, catalog.Selection{Phases: []string{"mdm-enrollment"}, Required: []catalog.Required{"yes"}}},
		{[]string{"--service", "intune-checkin,intune-ime"}, catalog.Selection{Services: []string{"intune-checkin", "intune-ime"}}},
		{[]string{"--required=unknown", "--phase", "telemetry"}, catalog.Selection{Phases: []string{"telemetry"}, Required: []catalog.Required{"unknown"}}},
	}
	for _, tt := range tests {
		out, errs, code := pw(t, append([]string{"endpoints"}, tt.args...)...)
		want, err := cat.Select(tt.sel)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != len(want)+1 || len(want) == 0 {
			t.Errorf("endpoints %v: exit %d, %d lines for %d entries", tt.args, code, len(lines), len(want))
			continue
		}
		for i, e := range want {
			if f := strings.Fields(lines[i+1]); f[0] != e.Pattern || f[1] != e.Service || f[2] != e.Phase || f[3] != string(e.Required) {
				t.Errorf("endpoints %v line %d = %q, want %s", tt.args, i+1, lines[i+1], e.Pattern)
			}
		}
		if !strings.Contains(errs, fmt.Sprintf("%d of %d entries", len(want), len(cat.Entries()))) {
			t.Errorf("stderr %q", errs)
		}
	}
	for _, bad := range [][]string{{"--phase", "lunch"}, {"--service", "nope"}, {"--required=maybe"}, {"frobnicate"}} {
		if _, errs, code := pw(t, append([]string{"endpoints"}, bad...)...); code != 2 {
			t.Errorf("endpoints %v: exit %d (%s), want 2", bad, code, errs)
		}
	}
	out, _, code := pw(t, "endpoints", "--help")
	if code != 0 || !strings.Contains(out, "merge-ms") || !strings.Contains(out, "Examples:") {
		t.Errorf("help: %d\n%s", code, out)
	}
}

func TestEndpointsExport(t *testing.T) {
	cat := catalog.Default()
	dir := t.TempDir()
	file := filepath.Join(dir, "autopilot.acl")
	_, _, code := pw(t, "endpoints", "export", "--format", "squid", "--required", "--phase", "mdm-enrollment", "-o", file)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := cat.Select(catalog.Selection{Phases: []string{"mdm-enrollment"}, Required: []catalog.Required{"yes"}})
	var want bytes.Buffer
	if err := cat.Export(&want, "squid", entries, catalog.ExportOptions{Title: "pilotwire endpoints export --format squid --required --phase mdm-enrollment -o " + file}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("export file differs from catalog.Export:\n%s", got)
	}
	if !strings.Contains(string(got), "\n.manage.microsoft.com\n") {
		t.Errorf("squid list lacks .manage.microsoft.com:\n%s", got)
	}

	out, _, code := pw(t, "endpoints", "export", "--format", "pac", "--proxy", "127.0.0.1:8080")
	if code != 0 || !strings.Contains(out, `return "PROXY 127.0.0.1:8080";`) || !strings.Contains(out, `return "DIRECT";`) {
		t.Errorf("pac: %d\n%.300s", code, out)
	}
	out, _, code = pw(t, "endpoints", "export", "--format", "pac", "--others", "PROXY corp.example:3128; DIRECT")
	if code != 0 || !strings.Contains(out, `return "DIRECT";`) || !strings.Contains(out, `return "PROXY corp.example:3128; DIRECT";`) {
		t.Errorf("pac bypass: %d", code)
	}
	for _, bad := range [][]string{
		{"--format", "pac"},                             // both DIRECT
		{"--format", "pac", "--proxy", "a b"},           // not a route
		{"--format", "pac", "--proxy", `x");alert("`},   // not a route
		{"--format", "squid", "--proxy", "127.0.0.1:1"}, // --proxy is for PAC
		{"--format", "xml"},
	} {
		if _, errs, code := pw(t, append([]string{"endpoints", "export"}, bad...)...); code != 2 {
			t.Errorf("export %v: exit %d (%s), want 2", bad, code, errs)
		}
	}
	for _, format := range catalog.Formats() {
		out, _, code := pw(t, "endpoints", "export", "--format", format, "--service", "autopilot")
		want := "ztd.dds.microsoft.com"
		if format == "squid" {
			want = "\n.dds.microsoft.com\n"
		}
		if format != "pac" && (code != 0 || !strings.Contains(out, want)) {
			t.Errorf("export %s: exit %d\n%s", format, code, out)
		}
	}
}

func TestEndpointsUserCatalog(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "mine.yaml")
	if err := os.WriteFile(good, []byte("entries:\n  - {pattern: proxy.lab.example, service: wpad, phase: network-up, purpose: lab proxy}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("entries:\n  - pattern: a.example\n    service: autopilot\n    phase: lunch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := pw(t, "--catalog", good, "endpoints", "lookup", "proxy.lab.example")
	if code != 0 || !strings.Contains(out, "lab proxy") {
		t.Errorf("--catalog before the command: %d\n%s", code, out)
	}
	out, _, code = pw(t, "endpoints", "lookup", "--catalog", good, "proxy.lab.example")
	if code != 0 || !strings.Contains(out, "lab proxy") {
		t.Errorf("--catalog after the command: %d\n%s", code, out)
	}
	t.Setenv("PILOTWIRE_CATALOG", good)
	out, _, code = pw(t, "endpoints", "lookup", "proxy.lab.example")
	if code != 0 || !strings.Contains(out, "lab proxy") {
		t.Errorf("PILOTWIRE_CATALOG: %d\n%s", code, out)
	}
	// Several files, joined like PATH, apply in order.
	second := filepath.Join(dir, "second.yaml")
	if err := os.WriteFile(second, []byte("entries:\n  - {pattern: proxy.lab.example, service: third-party, phase: other, purpose: second file}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = pw(t, "--catalog", good+string(filepath.ListSeparator)+second, "endpoints", "lookup", "proxy.lab.example")
	if code != 0 || !strings.Contains(out, "second file") {
		t.Errorf("two files: %d\n%s", code, out)
	}
	_, errs, code := pw(t, "--catalog", bad, "endpoints")
	if code != 1 || !strings.Contains(errs, bad+":4:") || !strings.Contains(errs, `unknown phase "lunch"`) {
		t.Errorf("bad file: exit %d, %q", code, errs)
	}
}

func TestEndpointsMergeMS(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ms.yaml")
	_, errs, code := pw(t, "endpoints", "merge-ms", "../../internal/catalog/testdata/ms-endpoints.json", "-o", out)
	if code != 0 || !strings.Contains(errs, "4 endpoint sets, 14 URLs: 8 already in the catalog, 4 added") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lookup, _, code := pw(t, "--catalog", out, "endpoints", "lookup", "newauth.example-ms.com")
	if code != 0 || !strings.Contains(lookup, "ms-common") {
		t.Errorf("merged file in use: %d\n%s", code, lookup)
	}
	if _, errs, code := pw(t, "endpoints", "merge-ms", "../../internal/catalog/testdata/golden/export.csv"); code != 1 || !strings.Contains(errs, "export.csv") {
		t.Errorf("not JSON: %d %s", code, errs)
	}
}

func TestEndpointsObserved(t *testing.T) {
	db := filepath.Join(t.TempDir(), "pilotwire.db")
	st, err := sqlite.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	mk := func(i int, client, host, sni string, at time.Duration) flow.Flow {
		return flow.Flow{Key: fmt.Sprint(i), Start: t0.Add(at), End: t0.Add(at + time.Second), Client: client,
			Source: flow.SourceProxy, Kind: flow.KindConnect, Host: host, SNI: sni, Port: 443, BytesDown: 1000}
	}
	flows := []flow.Flow{
		mk(1, "10.0.0.23", "ztd.dds.microsoft.com", "", 0),
		mk(2, "10.0.0.23", "fef.msua01.manage.microsoft.com", "", time.Minute),
		mk(3, "10.0.0.23", "ztd.dds.microsoft.com", "", 2*time.Minute),
		mk(4, "10.0.0.23", "dns.msftncsi.com", "", 3*time.Minute),
		mk(5, "10.0.0.23", "203.0.113.7", "telemetry.vendor.example", 4*time.Minute),
		// a second session of the same device, three hours later
		mk(6, "10.0.0.23", "login.microsoftonline.com", "", 3*time.Hour),
		mk(7, "10.0.0.99", "tracker.example", "", 5*time.Minute),
	}
	if err := st.PutFlows(t.Context(), flows); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, errs, code := pw(t, "--store", db, "endpoints", "observed", "--client", "10.0.0.23")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || strings.Join(strings.Fields(lines[1])[2:4], " ") != "ztd.dds.microsoft.com 2" || !strings.Contains(lines[2], "MSUA01") ||
		!strings.Contains(lines[3], "in no Microsoft list") || !strings.Contains(lines[4], "telemetry.vendor.example") ||
		!strings.Contains(lines[4], "not in the catalog") {
		t.Errorf("observed table:\n%s", out)
	}
	if !strings.Contains(errs, "5 hosts from "+db+": 2 in no Microsoft list (1 not in the catalog at all)") {
		t.Errorf("stderr %q", errs)
	}
	out, _, _ = pw(t, "--store", db, "endpoints", "observed", "--session", "1", "--format", "hosts")
	if got := strings.Join(nonComment(out), " "); got != "ztd.dds.microsoft.com fef.msua01.manage.microsoft.com dns.msftncsi.com telemetry.vendor.example" {
		t.Errorf("session 1 hosts: %q", got)
	}
	out, _, _ = pw(t, "--store", db, "endpoints", "observed", "--unlisted", "--format", "squid")
	if got := strings.Join(nonComment(out), " "); got != "dns.msftncsi.com tracker.example telemetry.vendor.example" {
		t.Errorf("unlisted squid: %q", got)
	}
	if _, _, code := pw(t, "--store", db, "endpoints", "observed", "--session", "9"); code != 2 {
		t.Errorf("--session 9: exit %d", code)
	}
}

func nonComment(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// The bypass list for a TLS-inspecting firewall: exactly the catalog's
// no-inspect entries, and every host the catalog marks is covered by it.
func TestEndpointsExportNoInspect(t *testing.T) {
	stdout, _, err := runCmd(t, "endpoints", "export", "--format", "hosts", "--no-inspect")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(stdout, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			got = append(got, l)
		}
	}
	if len(got) != 23 || !slices.Contains(got, "*.manage.microsoft.com") || slices.Contains(got, "ztd.dds.microsoft.com") {
		t.Errorf("no-inspect hosts (%d): %v", len(got), got)
	}
}

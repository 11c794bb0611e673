package catalog

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func goldenSelection(t *testing.T, c *Catalog) []Entry {
	t.Helper()
	es, err := c.Select(Selection{Phases: []string{"mdm-enrollment", "ime", "delivery-optimization"}})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestExportGolden(t *testing.T) {
	c := Default()
	entries := goldenSelection(t, c)
	ext := map[string]string{"squid": "squid.txt", "pac": "pac.js", "hosts": "hosts.txt", "csv": "csv", "json": "json", "markdown": "md"}
	for _, format := range Formats() {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			opt := ExportOptions{Title: "pilotwire endpoints export --phase mdm-enrollment,ime,delivery-optimization", Catalog: "PROXY 127.0.0.1:8080"}
			if err := c.Export(&buf, format, entries, opt); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", "export."+ext[format])
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("export %s differs from %s (run go test -update and review the diff)", format, golden)
			}
		})
	}
	if err := c.Export(&bytes.Buffer{}, "xml", entries, ExportOptions{}); err == nil {
		t.Error("unknown format accepted")
	}
	if err := c.Export(&bytes.Buffer{}, "pac", entries, ExportOptions{Catalog: `PROXY a"+alert(1)+"`}); err == nil {
		t.Error("PAC route with JavaScript accepted")
	}
}

// TestExportRoundTrip reads the CSV and JSON exports back.
func TestExportRoundTrip(t *testing.T) {
	c := Default()
	entries := c.Entries()
	var buf bytes.Buffer
	if err := c.Export(&buf, "csv", entries, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(entries)+1 {
		t.Fatalf("csv has %d records for %d entries", len(recs), len(entries))
	}
	for i, e := range entries {
		r := recs[i+1]
		if r[0] != e.Pattern || r[1] != e.Example || r[2] != e.Service || r[4] != e.Phase || r[5] != string(e.Required) || r[6] != e.Purpose || r[7] != e.Source {
			t.Fatalf("csv record %d = %q, entry %+v", i, r, e)
		}
	}
	buf.Reset()
	if err := c.Export(&buf, "json", entries, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	var js []JSONEntry
	if err := json.Unmarshal(buf.Bytes(), &js); err != nil {
		t.Fatal(err)
	}
	if len(js) != len(entries) {
		t.Fatalf("json has %d entries, want %d", len(js), len(entries))
	}
	for i, e := range entries {
		if js[i].Pattern != e.Pattern || js[i].Purpose != e.Purpose || js[i].ServiceColor == "" {
			t.Fatalf("json entry %d = %+v, entry %+v", i, js[i], e)
		}
	}
}

func TestSquidList(t *testing.T) {
	es := func(ps ...string) []Entry {
		var out []Entry
		for _, p := range ps {
			out = append(out, Entry{Pattern: p})
		}
		return out
	}
	tests := []struct {
		in            []Entry
		want, skipped string
	}{
		{es("a.example.com", "*.example.com", "example.com"), ".example.com", ""},
		{es("*.b.example.com", "*.example.com", "x.b.example.com"), ".example.com", ""},
		{es("kv*.prod.example.com", "*.prod.example.com"), ".prod.example.com", ""},
		{es("kv*.prod.example.com", "prod.example.com"), "prod.example.com", "kv*.prod.example.com"},
		{es("wpad.*", "watson.*.example.com", "a.example.com"), "a.example.com", "wpad.* watson.*.example.com"},
		{es("b.example.com", "a.example.com", "a.example.org"), "a.example.com b.example.com a.example.org", ""},
	}
	for _, tt := range tests {
		got, skipped := squidList(tt.in)
		if strings.Join(got, " ") != tt.want || strings.Join(skipped, " ") != tt.skipped {
			t.Errorf("squidList(%v) = %q, skipped %q; want %q, %q", tt.in, got, skipped, tt.want, tt.skipped)
		}
	}
}

// runSquidParse runs `squid -k parse` on a configuration that includes
// list and returns its combined output.
func runSquidParse(t *testing.T, squid, list string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	listPath := filepath.Join(dir, "autopilot.txt")
	if err := os.WriteFile(listPath, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "squid.conf")
	cfg := "acl autopilot dstdomain \"" + listPath + "\"\n" +
		"http_access allow autopilot\nhttp_access deny all\nhttp_port 127.0.0.1:3128\n" +
		"pid_filename " + filepath.Join(dir, "squid.pid") + "\n" +
		"cache_log " + filepath.Join(dir, "cache.log") + "\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, squid, "-k", "parse", "-f", conf).CombinedOutput()
	return string(out), err
}

// TestSquidAcceptsExport has real Squid parse the exported list.
func TestSquidAcceptsExport(t *testing.T) {
	squid := testutil.LookPath(t, "squid")
	c := Default()
	// The check must be able to fail: an overlapping list is refused.
	out, err := runSquidParse(t, squid, ".manage.microsoft.com\nmanage.microsoft.com\n")
	if err == nil || !strings.Contains(out, "ERROR") {
		t.Fatalf("squid accepted an overlapping list (err %v):\n%s", err, out)
	}
	for _, sel := range []Selection{{}, {Required: []Required{RequiredYes}}, {Phases: []string{"mdm-enrollment"}}} {
		entries, err := c.Select(sel)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := c.Export(&buf, "squid", entries, ExportOptions{Title: "test"}); err != nil {
			t.Fatal(err)
		}
		out, err := runSquidParse(t, squid, buf.String())
		if err != nil {
			t.Fatalf("squid -k parse failed for selection %+v: %v\n%s", sel, err, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "WARNING") || strings.Contains(l, "ERROR") {
				t.Errorf("squid on selection %+v: %s", sel, l)
			}
		}
		if !strings.Contains(out, "autopilot.txt") {
			t.Errorf("squid output does not show it read the list:\n%s", out)
		}
	}
}

// pacHarness evaluates a PAC file in Node's vm module with the standard
// PAC helper functions, and prints FindProxyForURL for each host given on
// stdin (one a line) as JSON.
const pacHarness = `
const vm = require("vm"), fs = require("fs");
const pac = fs.readFileSync(process.argv[2], "utf8");
function shExpMatch(str, shexp) {
  const re = new RegExp("^" + shexp.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
  return re.test(str);
}
const sandbox = {
  isPlainHostName: (h) => h.indexOf(".") < 0,
  dnsDomainIs: (h, d) => h.length >= d.length && h.substring(h.length - d.length) === d,
  localHostOrDomainIs: (h, d) => h === d || (h.indexOf(".") < 0 && d.lastIndexOf(h + ".", 0) === 0),
  isResolvable: () => false, isInNet: () => false, dnsResolve: () => null,
  myIpAddress: () => "127.0.0.1", dnsDomainLevels: (h) => h.split(".").length - 1,
  shExpMatch, weekdayRange: () => true, dateRange: () => true, timeRange: () => true,
};
vm.createContext(sandbox);
vm.runInContext(pac, sandbox, { filename: "export.pac", timeout: 5000 });
const hosts = fs.readFileSync(0, "utf8").split("\n").filter((h) => h !== "");
const out = {};
for (const h of hosts) out[h] = sandbox.FindProxyForURL("https://" + h + "/", h);
process.stdout.write(JSON.stringify(out));
`

// TestPACExport evaluates the exported PAC file with a real JavaScript
// engine and compares every answer with Lookup.
func TestPACExport(t *testing.T) {
	node := testutil.LookPath(t, "node")
	c := Default()
	entries := c.Entries()
	var buf bytes.Buffer
	const in, out = "PROXY 127.0.0.1:8080", "PROXY corp.example:3128; DIRECT"
	if err := c.Export(&buf, "pac", entries, ExportOptions{Catalog: in, Others: out}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pacPath := filepath.Join(dir, "export.pac")
	harness := filepath.Join(dir, "harness.js")
	if err := os.WriteFile(pacPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(harness, []byte(pacHarness), 0o644); err != nil {
		t.Fatal(err)
	}
	// Hosts with known answers, then every example host and variations.
	known := map[string]string{
		"ztd.dds.microsoft.com":              in,
		"ZTD.DDS.MICROSOFT.COM":              in,
		"ztd.dds.microsoft.com.":             in,
		"fef.msua01.manage.microsoft.com":    in,
		"kv801.prod.do.dsp.mp.microsoft.com": in,
		"contoso-my.sharepoint.com":          in,
		"watson.ppe.telemetry.microsoft.com": in,
		"wpad":                               in,
		"wpad.corp.example":                  in,
		"manage.microsoft.com.evil.test":     out,
		"notmanage.microsoft.com":            out,
		"msftconnecttest.com":                out,
		"evil.example":                       out,
		"microsoft.com":                      out,
		"10.1.2.3":                           out,
		"localhost":                          out,
	}
	var hosts []string
	for h := range known {
		hosts = append(hosts, h)
	}
	for _, e := range entries {
		hosts = append(hosts, e.Example, "x."+e.Example, "x"+e.Example, e.Example+".evil.test")
		if i := strings.IndexByte(e.Example, '.'); i >= 0 {
			hosts = append(hosts, e.Example[i+1:])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, harness, pacPath)
	cmd.Stdin = strings.NewReader(strings.Join(hosts, "\n"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got map[string]string
	if err := json.Unmarshal(res, &got); err != nil {
		t.Fatalf("harness output: %v\n%s", err, res)
	}
	for _, h := range hosts {
		want := out
		if _, ok := c.Lookup(h); ok {
			want = in
		}
		if k, ok := known[h]; ok && k != want {
			t.Errorf("test table says %s for %s, Lookup disagrees", k, h)
		}
		if got[h] != want {
			t.Errorf("PAC FindProxyForURL(%q) = %q, want %q", h, got[h], want)
		}
	}
	t.Logf("%d hosts evaluated", len(hosts))
}

func TestObserve(t *testing.T) {
	c := Default()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	flows := []flow.Flow{
		{Start: t0, Host: "ztd.dds.microsoft.com", BytesUp: 100, BytesDown: 900},
		{Start: t0.Add(time.Second), Host: "fef.msua01.manage.microsoft.com", BytesDown: 10},
		{Start: t0.Add(2 * time.Second), Host: "ZTD.DDS.MICROSOFT.COM.", BytesDown: 1},
		{Start: t0.Add(3 * time.Second), Host: "203.0.113.9", SNI: "dns.msftncsi.com"},
		{Start: t0.Add(4 * time.Second), Host: "tracker.example"},
		{Start: t0.Add(5 * time.Second), Host: "198.51.100.1"},
		{Start: t0.Add(6 * time.Second)},
	}
	o := NewObserver(c)
	for _, f := range flows {
		o.Add(f)
	}
	obs := o.Hosts()
	var got []string
	for _, o := range obs {
		got = append(got, o.Host)
	}
	if strings.Join(got, " ") != "ztd.dds.microsoft.com fef.msua01.manage.microsoft.com dns.msftncsi.com tracker.example 198.51.100.1" {
		t.Fatalf("hosts %v", got)
	}
	ztd := obs[0]
	if ztd.Flows != 2 || ztd.Bytes != 1001 || !ztd.Last.Equal(t0.Add(2*time.Second)) || !ztd.Known || ztd.Unlisted() {
		t.Errorf("ztd: %+v", ztd)
	}
	if obs[1].Match.Region != "MSUA01" {
		t.Errorf("region %q", obs[1].Match.Region)
	}
	if !obs[2].Known || !obs[2].Unlisted() { // required: unknown
		t.Errorf("dns.msftncsi.com: %+v", obs[2])
	}
	if obs[3].Known || !obs[3].Unlisted() || obs[3].Entry().Service != "" {
		t.Errorf("tracker: %+v", obs[3])
	}
	var buf bytes.Buffer
	var es []Entry
	for _, o := range obs {
		es = append(es, o.Entry())
	}
	if err := c.Export(&buf, "squid", es, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\ntracker.example\n") || !strings.Contains(buf.String(), "\nfef.msua01.manage.microsoft.com\n") {
		t.Errorf("observed squid export:\n%s", buf.String())
	}
}

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/procstat"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

const (
	harFile    = "../../internal/importer/har/testdata/chrome.har"
	sazFile    = "../../internal/importer/saz/testdata/httpbin-test.saz"
	netlogFile = "../../internal/importer/netlog/testdata/chrome-netlog-google-homepage.json"
	pcapFile   = "../../internal/importer/pcap/testdata/zeek_http_proxy.pcap"
)

func storeFlows(t *testing.T, db string, f flow.Filter) []flow.Flow {
	t.Helper()
	st, err := sqlite.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []flow.Flow
	if err := st.Flows(t.Context(), f, func(fl flow.Flow) error { out = append(out, fl); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImportCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "pilotwire.db")
	out, stderr, err := runCmd(t, "--store", db, "import", "--device", "LAB-VM-07", harFile, sazFile, netlogFile, pcapFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{
		`(?m)^\S+/chrome\.har: har, 3 flows \(3 new\), 0 skipped, \S+$`,
		`(?m)^\S+/httpbin-test\.saz: saz, 6 flows \(6 new\), 0 skipped, \S+$`,
		`(?m)^\S+/chrome-netlog-google-homepage\.json: netlog, 34 flows \(34 new\), 0 skipped, \S+$`,
		`(?m)^\S+/zeek_http_proxy\.pcap: pcap, \d+ flows \(\d+ new\), 0 skipped, \S+$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if stderr != "" {
		t.Errorf("stderr not empty when piped: %q", stderr)
	}
	flows := storeFlows(t, db, flow.Filter{})
	bySource := map[flow.Source]int{}
	for _, f := range flows {
		bySource[f.Source]++
		if f.Device != "LAB-VM-07" || f.SourceFile == "" || !filepath.IsAbs(f.SourceFile) {
			t.Errorf("flow %s: device %q, source file %q", f.Key, f.Device, f.SourceFile)
		}
	}
	if bySource[flow.SourceHAR] != 3 || bySource[flow.SourceSAZ] != 6 || bySource[flow.SourceNetlog] != 34 || bySource[flow.SourcePcap] == 0 {
		t.Errorf("stored by source: %v", bySource)
	}

	// Importing again adds nothing.
	out, _, err = runCmd(t, "--store", db, "import", "--format", "har", harFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "har, 3 flows (0 new), 0 skipped") {
		t.Errorf("re-import said:\n%s", out)
	}
	if n := len(storeFlows(t, db, flow.Filter{})); n != len(flows) {
		t.Errorf("re-import changed the store from %d to %d flows", len(flows), n)
	}
}

func TestImportBadFiles(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "pilotwire.db")
	junk := filepath.Join(dir, "notes.txt")
	os.WriteFile(junk, []byte("dear support, the device is stuck\n"), 0o644)
	data, err := os.ReadFile("../../internal/importer/har/testdata/edge.har")
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.har")
	os.WriteFile(cut, data[:len(data)/2], 0o644)
	var log strings.Builder
	for i := range 12 {
		if i%3 == 2 {
			fmt.Fprintf(&log, "1700000000.%03d 12 10.0.0.9 TCP_MISS/2x0 100 GET http://x/ - HIER_DIRECT/1.2.3.4 -\n", i)
		} else {
			fmt.Fprintf(&log, "1700000000.%03d 12 10.0.0.9 TCP_TUNNEL/200 100 CONNECT x.example:443 - HIER_DIRECT/1.2.3.4 -\n", i)
		}
	}
	access := filepath.Join(dir, "access.log")
	os.WriteFile(access, []byte(log.String()), 0o644)

	// The per-file summaries are the result (stdout); what could not be
	// read is a warning (stderr).
	out, stderr, err := runCmd(t, "--store", db, "import", junk, cut, access)
	if err == nil || err.Error() != "import: 1 of 3 files could not be read" {
		t.Errorf("error %v", err)
	}
	if !strings.Contains(stderr, "pilotwire: import "+junk+": not a supported format: tried pcap and pcapng (magic number), Fiddler SAZ (zip), HAR") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if !regexp.MustCompile(`cut\.har: har, 16 flows \(16 new\), 0 skipped, \S+\n`).MatchString(out) ||
		!strings.Contains(stderr, "pilotwire: "+cut+": partly read: read 16 flows of a 916,952-byte file, then stopped early: entry 17 at offset 0x9a199: unexpected EOF\n") {
		t.Errorf("truncated HAR:\nstdout:\n%s\nstderr:\n%s", out, stderr)
	}
	wantLog := "access.log: squid, 8 flows (8 new), 4 skipped, "
	wantSkips := `  skipped line 3: field 4 (result code/status) "TCP_MISS/2x0": status is not a 3-digit number (a custom logformat? see docs/squid.md)
  skipped line 6: field 4 (result code/status) "TCP_MISS/2x0": status is not a 3-digit number (a custom logformat? see docs/squid.md)
  skipped line 9: field 4 (result code/status) "TCP_MISS/2x0": status is not a 3-digit number (a custom logformat? see docs/squid.md)
  skipped line 12: field 4 (result code/status) "TCP_MISS/2x0": status is not a 3-digit number (a custom logformat? see docs/squid.md)
`
	wantPartial := "pilotwire: " + access + `: partly read: read 8 flows of a 1,064-byte file; skipped 4 damaged parts (first: line 3: field 4 (result code/status) "TCP_MISS/2x0": status is not a 3-digit number (a custom logformat? see docs/squid.md))
`
	if !strings.Contains(out, wantLog) || !strings.Contains(stderr, wantPartial+wantSkips) || strings.Contains(out, "skipped line") {
		t.Errorf("access.log:\nstdout:\n%s\nstderr:\n%s", out, stderr)
	}
}

func TestImportUsage(t *testing.T) {
	db := filepath.Join(t.TempDir(), "pilotwire.db")
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"import"}, "import: no file given (see pilotwire import --help)"},
		{[]string{"import", "--format", "csv", harFile}, `import: --format: unknown format "csv" (want auto, squid, har, saz, pcap or netlog)`},
		{[]string{"import", "--format", "saz", harFile}, "as saz: not a readable zip"},
	}
	for _, tt := range tests {
		_, stderr, err := runCmd(t, append([]string{"--store", db}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error()+stderr, tt.err) {
			t.Errorf("%v: error %v, stderr %q; want %q", tt.args, err, stderr, tt.err)
		}
	}
	out, _, err := runCmd(t, "import", "--help")
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	if !strings.Contains(out, "pilotwire import --format har --device LAB-VM-07 capture.har") || !strings.Contains(out, "-device NAME") {
		t.Errorf("help:\n%s", out)
	}
}

// writeSquidLog writes n native access.log lines.
func writeSquidLog(tb testing.TB, path string, n int) {
	tb.Helper()
	fh, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	hosts := []string{"login.microsoftonline.com", "enterpriseregistration.windows.net", "ztd.dds.microsoft.com", "www.msftconnecttest.com"}
	for i := 0; i < n; i++ {
		h := hosts[i%len(hosts)]
		ts := strconv.Itoa(1700000000+i/1000) + "." + fmt.Sprintf("%03d", i%1000)
		switch i % 3 {
		case 0:
			fmt.Fprintf(w, "%s %6d 10.1.0.%d TCP_TUNNEL/200 %d CONNECT %s:443 - HIER_DIRECT/20.190.160.%d - %s\n", ts, 50+i%900, i%250, 4000+i%9000, h, i%250, h)
		case 1:
			fmt.Fprintf(w, "%s %6d 10.1.0.%d TCP_MISS/200 %d GET http://%s/connecttest.txt?n=%d - HIER_DIRECT/20.190.160.%d text/plain\n", ts, 10+i%90, i%250, 200+i%900, h, i, i%250)
		default:
			fmt.Fprintf(w, "%s %6d 10.1.0.%d TCP_DENIED/403 3900 CONNECT %s:443 - HIER_NONE/- text/html\n", ts, i%3, i%250, h)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	fh.Close()
}

// BenchmarkImportSquidSQLite runs "pilotwire import" (the CLI's own code
// path) on a generated native access.log into a fresh SQLite store and
// reports lines/s end to end. 1,000,000 lines by default; set
// PILOTWIRE_SQUID_LINES to change it.
func BenchmarkImportSquidSQLite(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("PILOTWIRE_SQUID_LINES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	log := filepath.Join(dir, "access.log")
	writeSquidLog(b, log, n)
	st, _ := os.Stat(log)
	b.SetBytes(st.Size())
	b.ResetTimer()
	cpu0 := procstat.Self()
	i := 0
	for b.Loop() {
		i++
		db := filepath.Join(dir, fmt.Sprintf("run%d.db", i))
		var stdout, stderr strings.Builder
		if err := run(context.Background(), []string{"--store", db, "import", log}, &stdout, &stderr); err != nil {
			b.Fatalf("%v: %s", err, stderr.String())
		}
		if want := fmt.Sprintf("squid, %d flows (%d new), 0 skipped", n, n); !strings.Contains(stdout.String(), want) {
			b.Fatalf("output %q, want %q", stdout.String(), want)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	if cpu := procstat.Self() - cpu0; cpu > 0 {
		// On a busy machine wall time says little: this is the work done
		// per CPU-second used (both goroutines, reader and writer, count).
		b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "lines/cpu-s")
	}
}

func TestProgressLine(t *testing.T) {
	var buf strings.Builder
	p := newProgress(&buf, "big.har", false)
	if p.on {
		t.Fatal("progress is on for a strings.Builder")
	}
	p.update(10, 100, 1) // off: draws nothing
	p.on = true
	p.update(10, 100, 1) // within the first half second: nothing yet
	p.start = time.Now().Add(-10 * time.Second)
	p.update(50<<20, 100<<20, 1234)
	p.done()
	want := "\rbig.har: 50.0MiB of 100.0MiB (50%), 1234 flows, 5.0MiB/s, 10s left\r" + strings.Repeat(" ", len("big.har: 50.0MiB of 100.0MiB (50%), 1234 flows, 5.0MiB/s, 10s left")) + "\r"
	if buf.String() != want {
		t.Errorf("progress wrote %q, want %q", buf.String(), want)
	}
}

func TestImportSquidLogformat(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "pilotwire.db")
	log := filepath.Join(dir, "custom.log")
	os.WriteFile(log, []byte("1700000000.500    250 10.0.0.9 50000 TCP_TUNNEL/200 100 CONNECT x.example:443 - HIER_DIRECT/1.2.3.4 -\n"+
		"1700000001.500      2 10.0.0.9 50002 TCP_DENIED/403 3900 GET http://y.example/ - HIER_NONE/- text/html\n"), 0o644)
	const format = `%ts.%03tu %6tr %>a %>p %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`

	// Without the logformat every line is skipped, and the file refused.
	_, stderr, err := runCmd(t, "--store", db, "import", log)
	if err == nil || !strings.Contains(stderr, `nothing readable, all 2 parts skipped (first: line 1: field 4 (result code/status) "50000"`) {
		t.Errorf("error %v, stderr:\n%s", err, stderr)
	}
	out, stderr, err := runCmd(t, "--store", db, "import", "--squid-logformat", format, log)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(out, "custom.log: squid, 2 flows (2 new), 0 skipped") {
		t.Errorf("output:\n%s", out)
	}
	var got []string
	for _, f := range storeFlows(t, db, flow.Filter{}) {
		got = append(got, fmt.Sprintf("%s %s:%d %d %s %d", f.Kind, f.Host, f.Port, f.Status, f.Decision, f.ClientPort))
	}
	if want := "connect x.example:443 200 allowed 50000,http y.example:80 403 denied 50002"; strings.Join(got, ",") != want {
		t.Errorf("stored %q, want %q", got, want)
	}
	_, _, err = runCmd(t, "--store", db, "import", "--squid-logformat", "%>a %rm %ru", log)
	if err == nil || err.Error() != `import: --squid-logformat: logformat "%>a %rm %ru" has no time (%ts or [%tl])` {
		t.Errorf("error %v", err)
	}
}

// import --proxy: two sites' captures of devices with the same addresses
// go into one store and stay apart, by site.
func TestImportProxyName(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "shared.db")
	a, b := filepath.Join(dir, "site-a.log"), filepath.Join(dir, "site-b.log")
	writeSquidLog(t, a, 30)
	writeSquidLog(t, b, 31) // one line more: another file, the same clients and times
	for _, c := range [][]string{{a, "site-a"}, {b, "site-b"}} {
		if _, stderr, err := runCmd(t, "--store", store, "import", c[0], "--proxy", c[1], "--quiet"); err != nil {
			t.Fatalf("import %s: %v\n%s", c[0], err, stderr)
		}
	}
	all, _, err := runCmd(t, "--store", store, "sessions", "--json")
	if err != nil {
		t.Fatal(err)
	}
	onlyB, _, err := runCmd(t, "--store", store, "sessions", "--json", "--proxy", "site-b")
	if err != nil {
		t.Fatal(err)
	}
	count := func(out, proxy string) int { return strings.Count(out, `"proxy": "`+proxy+`"`) }
	if na, nb := count(all, "site-a"), count(all, "site-b"); na == 0 || nb == 0 || count(onlyB, "site-a") != 0 || count(onlyB, "site-b") != nb {
		t.Errorf("sessions: %d of site-a and %d of site-b; --proxy site-b:\n%s", na, nb, onlyB)
	}
	flows, _, err := runCmd(t, "--store", store, "flows", "--proxy", "site-b", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(flows, "\n"); n != 31 || strings.Count(flows, `"proxy":"site-b"`) != 31 {
		t.Errorf("flows --proxy site-b: %d flows\n%.500s", n, flows)
	}
}

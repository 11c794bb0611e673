package importer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/squid"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// externalDir is ../shared/testdata/external relative to the repository
// root, or "" when absent.
func externalDir(t testing.TB) string {
	t.Helper()
	p, ok := testutil.SharedPath(t, "testdata", "external")
	if !ok {
		return ""
	}
	return p
}

func head(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data[:min(len(data), headSize)]
}

func TestDetectRealFiles(t *testing.T) {
	files := map[string]Format{
		"har/testdata/chrome.har":                            Format("har"),
		"har/testdata/with-bom.har":                          FormatHAR,
		"har/testdata/insomnia.har":                          FormatHAR,
		"netlog/testdata/chrome-netlog-google-homepage.json": FormatNetlog,
		"saz/testdata/httpbin-test.saz":                      FormatSAZ,
		"pcap/testdata/zeek_http_proxy.pcap":                 FormatPcap,
		"pcap/testdata/zeek_http_connect-with-header.pcap":   FormatPcap,
	}
	if ext := externalDir(t); ext != "" {
		files[filepath.Join(ext, "squid/elastic_test-access.log")] = FormatSquid
		// The extensive custom layout still looks like a Squid log; its lines
		// are then skipped one by one with reasons (see the squid package).
		files[filepath.Join(ext, "squid/elastic_test-access-extensive.log")] = FormatSquid
		// Named .pcapng, but a classic pcap: detected by magic number.
		files[filepath.Join(ext, "pcap/ja4_http1.pcapng")] = FormatPcap
		files[filepath.Join(ext, "pcap/ja4_latest.pcapng")] = FormatPcap
	}
	for path, want := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			got, err := Detect(head(t, path))
			if err != nil || got != want {
				t.Errorf("Detect = %q, %v; want %q", got, err, want)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		head string
		want Format
		err  string
	}{
		{"pcapng", "\x0a\x0d\x0d\x0a\x1c\x00\x00\x00", FormatPcap, ""},
		{"pcap ns big endian", "\xa1\xb2\x3c\x4d", FormatPcap, ""},
		{"zip", "PK\x03\x04\x14\x00", FormatSAZ, ""},
		{"har", " \n{\"log\": {\"version\": \"1.2\"}}", FormatHAR, ""},
		{"netlog truncated after the first key", `{"constants": {"logEventTypes": {"A"`, FormatNetlog, ""},
		{"netlog events first", `{"events": []}`, FormatNetlog, ""},
		{"squid native", "1157689312.049   5006 10.105.21.199 TCP_MISS/200 19763 CONNECT login.yahoo.com:443 badeyek DIRECT/175.16.199.115 -\n", FormatSquid, ""},
		{"squid common", `10.0.0.5 - - [08/Sep/2006:04:21:52 +0000] "GET http://a/ HTTP/1.1" 200 12 TCP_MISS:HIER_DIRECT` + "\n", FormatSquid, ""},
		{"squid, first line damaged", "garbage\n1.0 5 10.0.0.1 TCP_MISS/200 1 GET http://a/ - DIRECT/1.2.3.4 -\n1.0 5 10.0.0.1 TCP_MISS/200 1 GET http://a/ - DIRECT/1.2.3.4 -\n", FormatSquid, ""},
		{"other json", `{"name": "x"}`, "", `a JSON object whose first key is "name"; tried pcap`},
		{"broken json", `{"log"`, FormatHAR, ""},
		{"json array", `[1,2]`, "", "not a supported format: tried pcap and pcapng"},
		{"text", "hello world\nthis is not a log\n", "", "not a supported format: tried pcap and pcapng (magic number), Fiddler SAZ (zip), HAR"},
		{"empty", "", "", "not a supported format: the file is empty; tried"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect([]byte(tt.head))
			if got != tt.want {
				t.Errorf("format %q, want %q", got, tt.want)
			}
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("error %v, want one containing %q", err, tt.err)
			}
			if tt.err != "" && !errors.Is(err, ErrUnknownFormat) {
				t.Errorf("error %v is not ErrUnknownFormat", err)
			}
			if tt.err != "" && !strings.Contains(err.Error(), "Squid access.log") {
				t.Errorf("error %v does not list every format tried", err)
			}
		})
	}
}

func readFile(t testing.TB, path string, opt Options) ([]flow.Flow, Result, error) {
	t.Helper()
	var flows []flow.Flow
	res, err := ReadFile(context.Background(), path, opt, func(f flow.Flow) error {
		flows = append(flows, f)
		return nil
	})
	return flows, res, err
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadFileIdentity(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.har")
	b := filepath.Join(dir, "renamed.json")
	copyFile(t, "har/testdata/edge.har", a)
	copyFile(t, "har/testdata/edge.har", b)

	var reported []int64
	flowsA, res, err := readFile(t, a, Options{Device: "LAB-VM-07", Progress: func(read, total, flows int64) { reported = append(reported, read, total, flows) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatHAR || res.Flows != 22 || len(flowsA) != 22 || res.SkipCount != 0 || res.StoppedAt != "" || res.Size != 1833905 {
		t.Errorf("result %+v", res)
	}
	if len(res.Identity) != 16 {
		t.Errorf("identity %q", res.Identity)
	}
	for _, f := range flowsA {
		if !strings.HasPrefix(f.Key, res.Identity+"/entry:") || f.SourceFile != a || f.Device != "LAB-VM-07" || f.Source != flow.SourceHAR {
			t.Fatalf("flow %+v", f)
		}
	}
	if n := len(reported); n < 3 || reported[n-3] != res.Size || reported[n-2] != res.Size || reported[n-1] != 22 {
		t.Errorf("last progress %v, want %d of %d bytes, 22 flows", reported[max(0, n-3):], res.Size, res.Size)
	}

	// Same content under another name (and with --format given): same keys.
	flowsB, _, err := readFile(t, b, Options{Format: FormatHAR})
	if err != nil {
		t.Fatal(err)
	}
	keys := func(fs []flow.Flow) []string {
		var k []string
		for _, f := range fs {
			k = append(k, f.Key)
		}
		return k
	}
	if !slices.Equal(keys(flowsA), keys(flowsB)) {
		t.Error("the same file under another name got other keys")
	}
	// Another file: other keys.
	flowsC, _, err := readFile(t, "har/testdata/firefox.har", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Split(flowsC[0].Key, "/")[0] == res.Identity {
		t.Error("two different files share an identity")
	}
}

func TestReadFileEveryFormat(t *testing.T) {
	tests := []struct {
		path  string
		fmt   Format
		flows int
	}{
		{"har/testdata/chrome.har", FormatHAR, 3},
		{"netlog/testdata/chrome-netlog-google-homepage.json", FormatNetlog, 34},
		{"saz/testdata/httpbin-test.saz", FormatSAZ, 6},
		{"pcap/testdata/zeek_http_proxy.pcap", FormatPcap, 1},
	}
	if ext := externalDir(t); ext != "" {
		tests = append(tests, struct {
			path  string
			fmt   Format
			flows int
		}{filepath.Join(ext, "squid/elastic_test-access.log"), FormatSquid, 100})
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			flows, res, err := readFile(t, tt.path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != tt.fmt || res.Flows != tt.flows || len(flows) != tt.flows {
				t.Errorf("format %s, %d flows (%d emitted); want %s, %d", res.Format, res.Flows, len(flows), tt.fmt, tt.flows)
			}
			seen := map[string]bool{}
			for _, f := range flows {
				if seen[f.Key] {
					t.Errorf("duplicate key %s", f.Key)
				}
				seen[f.Key] = true
			}
		})
	}
}

func TestReadFileDamaged(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("har/testdata/edge.har")
	if err != nil {
		t.Fatal(err)
	}
	// Cut edge.har in the middle of an entry: what came before is kept.
	cut := filepath.Join(dir, "cut.har")
	os.WriteFile(cut, data[:len(data)/2], 0o644)
	flows, res, err := readFile(t, cut, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) == 0 || len(flows) >= 22 || !strings.Contains(res.StoppedAt, "unexpected EOF") ||
		!strings.HasPrefix(res.StoppedAt, "entry ") {
		t.Errorf("%d flows, stopped at %q", len(flows), res.StoppedAt)
	}

	// Cut before the first entry ends: nothing readable is an error.
	early := filepath.Join(dir, "early.har")
	os.WriteFile(early, data[:300], 0o644)
	if _, _, err := readFile(t, early, Options{}); err == nil || !strings.Contains(err.Error(), "as har: offset 0x127: log.pages: unexpected EOF") {
		t.Errorf("error %v", err)
	}

	// A file of no format is refused by name, with the formats tried.
	junk := filepath.Join(dir, "junk.bin")
	os.WriteFile(junk, []byte("\x00\x01\x02 not anything"), 0o644)
	_, _, err = readFile(t, junk, Options{})
	if !errors.Is(err, ErrUnknownFormat) || !strings.HasPrefix(err.Error(), "import "+junk+": not a supported format: tried pcap") {
		t.Errorf("error %v", err)
	}

	// A forced format that does not fit.
	if _, _, err := readFile(t, junk, Options{Format: FormatSAZ}); err == nil || !strings.Contains(err.Error(), "as saz: not a readable zip") {
		t.Errorf("error %v", err)
	}

	// Many bad lines: all counted, the first MaxSkips kept.
	lines := strings.Repeat("1157689313.000 1 10.0.0.1 TCP_HIT/200 10 GET http://b/ - NONE/- text/html\n", 3) +
		strings.Repeat("1157689313.000 1 10.0.0.1 TCP_HIT/2x0 10 GET http://b/ - NONE/- text/html\n", MaxSkips+5)
	log := filepath.Join(dir, "access.log")
	os.WriteFile(log, []byte(lines), 0o644)
	_, res, err = readFile(t, log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Flows != 3 || res.SkipCount != MaxSkips+5 || len(res.Skipped) != MaxSkips || res.Skipped[0].Where != "line 4" {
		t.Errorf("result: %d flows, %d skips (%d kept), first %+v", res.Flows, res.SkipCount, len(res.Skipped), res.Skipped[0])
	}

	// Every line skipped: nothing readable is an error, and the skips are
	// still reported.
	bad := filepath.Join(dir, "bad.log")
	os.WriteFile(bad, []byte(strings.Repeat("1157689313.000 1 10.0.0.1 58938 TCP_HIT/200 10 GET http://b/ - NONE/- text/html\n", 3)), 0o644)
	_, res, err = readFile(t, bad, Options{})
	if err == nil || !strings.Contains(err.Error(), `as squid: nothing readable, all 3 parts skipped (first: line 1: field 4 (result code/status) "58938"`) || res.SkipCount != 3 {
		t.Errorf("error %v, %d skipped", err, res.SkipCount)
	}

	// Missing file and directory.
	if _, _, err := readFile(t, filepath.Join(dir, "nope"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v", err)
	}
	if _, _, err := readFile(t, dir, Options{}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("error %v", err)
	}
}

func TestEmitErrorStops(t *testing.T) {
	stop := errors.New("disk full")
	_, err := ReadFile(context.Background(), "saz/testdata/httpbin-test.saz", Options{}, func(flow.Flow) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("error %v, want %v", err, stop)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = ReadFile(ctx, "har/testdata/edge.har", Options{}, func(flow.Flow) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": FormatAuto, "auto": FormatAuto, "HAR": FormatHAR, "pcapng": FormatPcap, " squid ": FormatSquid, "netlog": FormatNetlog, "saz": FormatSAZ} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("csv"); err == nil || !strings.Contains(err.Error(), "want auto, squid, har, saz, pcap or netlog") {
		t.Errorf("error %v", err)
	}
}

// FuzzDetect: Detect never panics and either names a format or says which
// were tried.
func FuzzDetect(f *testing.F) {
	for _, s := range []string{"\x0a\x0d\x0d\x0a", "PK\x03\x04", "\xef\xbb\xbf{\"log\":{}}", `{"constants":{}}`, "1.0 1 a b/200 1 GET u - x/y -\n", `a - - [x] "GET / HTTP/1.1" 200 1 X:Y`, "{", "\xef\xbb\xbf"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		format, err := Detect(head)
		if (err == nil) == (format == "") {
			t.Errorf("Detect = %q, %v", format, err)
		}
		if err != nil && !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("error %v is not ErrUnknownFormat", err)
		}
	})
}

// TestRegistry: every format of the registry is listed once for users,
// under a name ParseFormat takes back, and Detect names it for its sample.
func TestRegistry(t *testing.T) {
	samples := map[Format]string{
		FormatPcap:   "pcap/testdata/zeek_http_proxy.pcap",
		FormatSAZ:    "saz/testdata/httpbin-test.saz",
		FormatHAR:    "har/testdata/chrome.har",
		FormatNetlog: "netlog/testdata/chrome-netlog-google-homepage.json",
		FormatSquid:  "squid/testdata/sample-access.log",
	}
	if got, want := Formats(), []Format{FormatPcap, FormatSAZ, FormatHAR, FormatNetlog, FormatSquid}; !slices.Equal(got, want) {
		t.Errorf("Formats() = %q, want %q (the detection order)", got, want)
	}
	if got, want := FormatList(), "squid, har, saz, pcap (also pcapng) or netlog"; got != want {
		t.Errorf("FormatList() = %q, want %q", got, want)
	}
	listed := map[int]Format{}
	for _, e := range registry {
		if other, ok := listed[e.listed]; ok || e.listed < 0 || e.listed >= len(registry) {
			t.Errorf("%s is listed at %d (taken by %q), want a place of its own in 0..%d", e.name, e.listed, other, len(registry)-1)
		}
		listed[e.listed] = e.name
		if got, err := ParseFormat(strings.ToUpper(string(e.name))); err != nil || got != e.name {
			t.Errorf("ParseFormat(%q) = %q, %v", e.name, got, err)
		}
		sample, ok := samples[e.name]
		if !ok {
			t.Errorf("format %s has no sample file in this test", e.name)
			continue
		}
		if got, err := Detect(head(t, sample)); err != nil || got != e.name {
			t.Errorf("Detect(%s) = %q, %v; want %s", sample, got, err, e.name)
		}
	}
}

// TestFormatOptions: a format's own options reach its reader through the
// registry; the other formats ignore them; a value that is no format's
// options is refused, not silently ignored.
func TestFormatOptions(t *testing.T) {
	dir := t.TempDir()
	custom := filepath.Join(dir, "custom.log")
	writeFile(t, custom, "1700000000.500    250 10.0.0.9 50000 TCP_TUNNEL/200 100 CONNECT x.example:443 - HIER_DIRECT/1.2.3.4 -\n")
	layout, err := squid.ParseLogformat(`%ts.%03tu %6tr %>a %>p %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{FormatOptions: []any{squid.Options{Layout: layout}}}

	_, _, err = readFile(t, custom, Options{})
	if err == nil || !strings.Contains(err.Error(), `(first: line 1: field 4 (result code/status) "50000"`) {
		t.Errorf("without the layout: error %v", err)
	}
	flows, res, err := readFile(t, custom, opt)
	if err != nil || res.Format != FormatSquid || len(flows) != 1 || flows[0].ClientPort != 50000 || flows[0].Host != "x.example" {
		t.Errorf("with the layout: %+v, %v, %+v", res, err, flows)
	}
	// Squid's options do not bother another format.
	if flows, _, err := readFile(t, "har/testdata/chrome.har", opt); err != nil || len(flows) != 3 {
		t.Errorf("HAR with squid options: %d flows, %v", len(flows), err)
	}
	_, _, err = readFile(t, custom, Options{FormatOptions: []any{"logformat"}})
	if want := "import " + custom + ": options of type string are no format's options (want, e.g., squid.Options)"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

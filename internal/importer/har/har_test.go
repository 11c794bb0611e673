package har

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
	"github.com/pilotwire/pilotwire/internal/importer/internal/stretch"
)

type skipped = importtest.Skip

func readBytes(t testing.TB, data []byte) ([]flow.Flow, []skipped, error) {
	t.Helper()
	var c importtest.Collector
	err := Read(context.Background(), bytes.NewReader(data), c.Emit, c.Skip)
	return c.Flows, c.Skips, err
}

func readFile(t testing.TB, name string) []flow.Flow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	flows, skips, err := readBytes(t, data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(skips) != 0 {
		t.Errorf("%s: skipped %v", name, skips)
	}
	return flows
}

// The expectations of ../shared/testdata/external/README.md, section har/.
func TestRealFiles(t *testing.T) {
	tests := []struct {
		file     string
		entries  int
		methods  map[string]int
		statuses map[int]int
		hosts    map[string]int
		first    string // earliest startedDateTime, with the file's zone
		last     string // latest
		offset   int    // zone offset of the times, seconds east of UTC
		serverIP int    // entries with serverIPAddress
	}{
		{"chrome.har", 3, map[string]int{"GET": 3}, map[int]int{200: 1, 304: 1, 0: 1},
			map[string]int{"www.google.com": 2, "mitmproxy.org": 1}, "2023-03-30T00:00:54.250Z", "2023-07-25T12:58:46.182Z", 0, -1},
		{"edge.har", 22, map[string]int{"GET": 22}, map[int]int{200: 19, 304: 3},
			map[string]int{"mitmproxy.org": 21, "s3-us-west-2.amazonaws.com": 1}, "2023-03-29T23:56:40.139Z", "2023-03-29T23:57:19.525Z", 0, 22},
		{"firefox.har", 14, map[string]int{"GET": 14}, map[int]int{200: 10, 304: 4},
			map[string]int{"mitmproxy.org": 13, "s3-us-west-2.amazonaws.com": 1}, "2023-03-29T16:58:59.303-07:00", "2023-03-29T16:58:59.643-07:00", -7 * 3600, 5},
		{"safari.har", 19, map[string]int{"GET": 19}, map[int]int{200: 19},
			map[string]int{"mitmproxy.org": 18, "s3-us-west-2.amazonaws.com": 1}, "2023-03-30T00:13:32.418Z", "2023-03-30T00:13:32.600Z", 0, 3},
		{"charles.har", 1, map[string]int{"GET": 1}, map[int]int{200: 1},
			map[string]int{"mitmproxy.org": 1}, "2023-03-29T17:37:42.482-07:00", "2023-03-29T17:37:42.482-07:00", -7 * 3600, 1},
		{"insomnia.har", 1, map[string]int{"GET": 1}, map[int]int{200: 1},
			map[string]int{"mitm.it": 1}, "", "", 0, -1},
		{"with-bom.har", 1, map[string]int{"POST": 1}, map[int]int{200: 1},
			map[string]int{"signal-metrics-collector-beta.s-onetag.com": 1}, "", "", 0, -1},
		{"mitmproxy_error_log.har", 2, map[string]int{"GET": 1, "POST": 1}, map[int]int{0: 1, 405: 1},
			map[string]int{"163.com": 1, "httpbin.org": 1}, "", "", 0, -1},
		{"mitmproxy_websocket.har", 3, map[string]int{"GET": 3}, map[int]int{101: 3},
			map[string]int{"demo.piesocket.com": 3}, "", "", 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			flows := readFile(t, tt.file)
			if len(flows) != tt.entries {
				t.Fatalf("%d flows, want %d", len(flows), tt.entries)
			}
			methods, statuses, hosts := map[string]int{}, map[int]int{}, map[string]int{}
			serverIP := 0
			first, last := flows[0].Start, flows[0].Start
			for i, f := range flows {
				methods[f.Method]++
				statuses[f.Status]++
				hosts[f.Host]++
				if strings.Contains(f.Note, "server ") {
					serverIP++
				}
				if want := fmt.Sprintf("entry:%d", i+1); f.Key != want {
					t.Errorf("key %q, want %q", f.Key, want)
				}
				if f.Source != flow.SourceHAR || f.Kind != flow.KindHTTP {
					t.Errorf("source %q kind %q", f.Source, f.Kind)
				}
				if f.End.Before(f.Start) {
					t.Errorf("entry %d ends %v before it starts %v", i+1, f.End, f.Start)
				}
				if (f.Status == 0) != (f.Error != "") {
					t.Errorf("entry %d: status %d with error %q", i+1, f.Status, f.Error)
				}
				if f.Start.Before(first) {
					first = f.Start
				}
				if f.Start.After(last) {
					last = f.Start
				}
				if _, off := f.Start.Zone(); off != tt.offset {
					t.Errorf("entry %d zone offset %d, want %d", i+1, off, tt.offset)
				}
			}
			if !maps.Equal(methods, tt.methods) {
				t.Errorf("methods %v, want %v", methods, tt.methods)
			}
			if !maps.Equal(statuses, tt.statuses) {
				t.Errorf("statuses %v, want %v", statuses, tt.statuses)
			}
			if !maps.Equal(hosts, tt.hosts) {
				t.Errorf("hosts %v, want %v", hosts, tt.hosts)
			}
			if tt.serverIP >= 0 && serverIP != tt.serverIP {
				t.Errorf("%d entries name a server IP, want %d", serverIP, tt.serverIP)
			}
			const layout = "2006-01-02T15:04:05.000Z07:00"
			if tt.first != "" && first.Format(layout) != tt.first {
				t.Errorf("first start %s, want %s", first.Format(layout), tt.first)
			}
			if tt.last != "" && last.Format(layout) != tt.last {
				t.Errorf("last start %s, want %s", last.Format(layout), tt.last)
			}
		})
	}
}

// chrome.har merges entries from several dates, in file order; the flows
// keep that order and their own dates, and the failed one says why.
func TestChromeDates(t *testing.T) {
	flows := readFile(t, "chrome.har")
	var got []string
	for _, f := range flows {
		got = append(got, fmt.Sprintf("%s %s %d %q", f.Start.Format(time.RFC3339Nano), f.Host, f.Status, f.Error))
	}
	want := []string{
		`2023-03-30T00:00:54.25Z mitmproxy.org 304 ""`,
		`2023-07-13T12:32:32.676Z www.google.com 0 "net::ERR_INTERNET_DISCONNECTED"`,
		`2023-07-25T12:58:46.182Z www.google.com 200 ""`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
	// The failed request took 4.119 ms (its time), all in "blocked".
	if d := flows[1].Duration(); d != 4119*time.Microsecond {
		t.Errorf("failed request lasted %v, want 4.119ms", d)
	}
}

func TestErrorLog(t *testing.T) {
	flows := readFile(t, "mitmproxy_error_log.har")
	f := flows[0]
	if f.Method != "GET" || f.Host != "163.com" || f.Status != 0 || !strings.HasPrefix(f.Error, "Multiple exceptions: [Errno 60] Connect call failed") {
		t.Errorf("first entry %+v", f)
	}
	if f := flows[1]; f.Method != "POST" || f.Host != "httpbin.org" || f.Status != 405 || f.Error != "" || f.Port != 443 || f.Scheme != "https" {
		t.Errorf("second entry %+v", f)
	}
}

func TestBOMAndNotes(t *testing.T) {
	data, err := os.ReadFile("testdata/with-bom.har")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		t.Fatal("with-bom.har lost its BOM")
	}
	flows := readFile(t, "with-bom.har")
	if f := flows[0]; f.Method != "POST" || f.Note != "http/2.0, server 99.83.181.31" || f.Start.Format(time.RFC3339Nano) != "2023-07-15T13:37:26.093Z" {
		t.Errorf("with-bom entry %+v", f)
	}
	edge := readFile(t, "edge.har")
	if f := edge[0]; !strings.HasPrefix(f.Note, "h3, server ") && !strings.HasPrefix(f.Note, "http/2.0, server ") && !strings.HasPrefix(f.Note, "HTTP/1.1, server ") {
		t.Errorf("edge note %q", f.Note)
	}
}

func TestDamaged(t *testing.T) {
	good := `{"startedDateTime":"2024-01-02T03:04:05.000+01:00","time":10,"request":{"method":"GET","url":"https://a.example/x","headersSize":100,"bodySize":0},"response":{"status":200,"headersSize":50,"bodySize":1000},"timings":{"send":1}}`
	tests := []struct {
		name      string
		input     string
		keys      []string
		skips     []skipped
		errPrefix string
	}{
		{
			name:  "bad entries are skipped",
			input: `{"log":{"pages":[{"id":"p"}],"entries":[` + good + `,{"startedDateTime":"yesterday","request":{"method":"GET","url":"http://b/"},"response":{"status":200}},{"startedDateTime":"2024-01-02T03:04:05Z","request":{"method":"GET","url":""}},` + good + `]}}`,
			keys:  []string{"entry:1", "entry:4"},
			skips: []skipped{{Where: "entry 2", Reason: `startedDateTime "yesterday": not an ISO 8601 time`}, {Where: "entry 3", Reason: "request has no url"}},
		},
		{
			name:  "wrong type keeps the entry",
			input: `{"log":{"entries":[{"startedDateTime":"2024-01-02T03:04:05Z","request":{"method":"GET","url":"http://b/","bodySize":"x"},"response":{"status":200}}]}}`,
			keys:  []string{"entry:1"},
		},
		{
			name:      "truncated",
			input:     `{"log":{"entries":[` + good + `,` + good[:60],
			keys:      []string{"entry:1"},
			errPrefix: "entry 2 at offset 0xf6: unexpected EOF",
		},
		{
			name:      "syntax error",
			input:     `{"log":{"entries":[` + good + `,{"a" 1}]}}`,
			keys:      []string{"entry:1"},
			errPrefix: "entry 2 at offset 0xf6: invalid character '1'",
		},
		{
			name:      "no log",
			input:     `{"foo":[1,2,{"x":3}]}`,
			errPrefix: `not a HAR file: no "log" object`,
		},
		{
			// Nested objects under "log" and no entries once read as a
			// HAR of 0 flows.
			name:      "log without entries",
			input:     `{"log":{"version":"1.2","creator":{"name":"x"},"pages":[{"id":"p","x":{"y":{"z":{}}}}]},"other":{"entries":[]}}`,
			errPrefix: "not a HAR: no log.entries array",
		},
		{
			name:  "no entries in log.entries",
			input: `{"log":{"version":"1.2","entries":[]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flows, skips, err := readBytes(t, []byte(tt.input))
			var keys []string
			for _, f := range flows {
				keys = append(keys, f.Key)
			}
			if !slices.Equal(keys, tt.keys) {
				t.Errorf("keys %v, want %v", keys, tt.keys)
			}
			if !slices.Equal(skips, tt.skips) {
				t.Errorf("skips %q, want %q", skips, tt.skips)
			}
			switch {
			case tt.errPrefix == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.errPrefix != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.errPrefix)):
				t.Errorf("error %v, want prefix %q", err, tt.errPrefix)
			}
		})
	}
	// The good entry, mapped.
	flows, _, _ := readBytes(t, []byte(`{"log":{"entries":[`+good+`]}}`))
	f := flows[0]
	if _, off := f.Start.Zone(); off != 3600 || f.Duration() != 10*time.Millisecond || f.BytesUp != 100 || f.BytesDown != 1050 ||
		f.Host != "a.example" || f.Port != 443 || f.URL != "https://a.example/x" {
		t.Errorf("good entry %+v", f)
	}
}

func TestEmitError(t *testing.T) {
	stop := errors.New("stop")
	data, _ := os.ReadFile("testdata/edge.har")
	n := 0
	err := Read(context.Background(), bytes.NewReader(data), func(flow.Flow) error { n++; return stop }, func(string, error) {})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d, want stop after 1", err, n)
	}
}

// A long run of entries that are not entries ends the read, naming where
// the run began; a shorter one is skipped.
func TestUnreadableRun(t *testing.T) {
	good := `{"startedDateTime":"2024-01-02T03:04:05Z","request":{"method":"GET","url":"http://a.example/"},"response":{"status":200}}`
	for _, tt := range []struct {
		bad   int
		keys  []string
		skips int
		err   string
	}{
		{stretch.MaxRecords + 5, []string{"entry:1"}, stretch.MaxRecords - 1,
			"entry 100001: no readable record in 100000 entries (since entry 2, offset 140): giving up; is the rest HAR entries?"},
		{stretch.MaxRecords - 1, []string{"entry:1", "entry:100001"}, stretch.MaxRecords - 1, ""},
	} {
		input := `{"log":{"entries":[` + good + strings.Repeat(",1", tt.bad) + "," + good + "]}}"
		flows, skips, err := readBytes(t, []byte(input))
		var keys []string
		for _, f := range flows {
			keys = append(keys, f.Key)
		}
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if !slices.Equal(keys, tt.keys) || len(skips) != tt.skips || gotErr != tt.err {
			t.Errorf("%d bad entries: keys %v, %d skips, error %q; want %v, %d, %q", tt.bad, keys, len(skips), gotErr, tt.keys, tt.skips, tt.err)
		}
	}
}

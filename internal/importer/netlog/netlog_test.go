package netlog

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strconv"
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

// The expectations of ../shared/testdata/external/README.md, section netlog/.
func TestGoogleHomepage(t *testing.T) {
	data, err := os.ReadFile("testdata/chrome-netlog-google-homepage.json")
	if err != nil {
		t.Fatal(err)
	}
	flows, skips, err := readBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(skips) != 0 {
		t.Errorf("skipped %v", skips)
	}
	if len(flows) != 34 {
		t.Fatalf("%d flows, want 34 (URL_REQUEST_START_JOB events with a url)", len(flows))
	}
	methods, hosts := map[string]int{}, map[string]int{}
	keys := map[string]bool{}
	// Event ticks run from 10441710 to 10443104; timeTickOffset is 1757521199116.
	lo, hi := time.UnixMilli(1757521199116+10441710), time.UnixMilli(1757521199116+10443104)
	for _, f := range flows {
		methods[f.Method]++
		hosts[f.Host]++
		if keys[f.Key] {
			t.Errorf("duplicate key %s", f.Key)
		}
		keys[f.Key] = true
		if f.Source != flow.SourceNetlog || f.Kind != flow.KindHTTP || f.Scheme != "https" || f.Port != 443 {
			t.Errorf("flow %+v", f)
		}
		if f.Start.Before(lo) || f.End.After(hi) || f.End.Before(f.Start) || f.Start.Location() != time.UTC {
			t.Errorf("%s: %v..%v outside the log's %v..%v", f.Key, f.Start, f.End, lo, hi)
		}
		if f.Status == 0 && f.Error == "" {
			t.Errorf("%s %s: no status and no error", f.Key, f.URL)
		}
	}
	if want := map[string]int{"GET": 25, "POST": 9}; !maps.Equal(methods, want) {
		t.Errorf("methods %v, want %v", methods, want)
	}
	want := map[string]int{"www.google.com": 28, "fonts.gstatic.com": 2, "www.gstatic.com": 2, "google.com": 1, "ogads-pa.clients6.google.com": 1}
	if !maps.Equal(hosts, want) {
		t.Errorf("hosts %v, want %v", hosts, want)
	}
	// The first request: google.com redirected (301) to www.google.com,
	// same request (source 12), two jobs, over QUIC.
	var a, b flow.Flow
	for _, f := range flows {
		switch f.URL {
		case "https://google.com/":
			a = f
		case "https://www.google.com/":
			b = f
		}
	}
	if !strings.HasPrefix(a.Key, "req:12:event:") || !strings.HasPrefix(b.Key, "req:12:event:") {
		t.Errorf("keys %q %q, want request 12", a.Key, b.Key)
	}
	if a.URL != "https://google.com/" || a.Status != 301 || !a.Start.Equal(time.UnixMilli(1757521199116+10441799)) || !a.End.Equal(time.UnixMilli(1757521199116+10442023)) {
		t.Errorf("first job %+v", a)
	}
	if b.URL != "https://www.google.com/" || b.Status != 200 || b.BytesDown != 30966+32768+6880 || b.Note != "over QUIC (HTTP/3)" {
		t.Errorf("second job %+v", b)
	}
}

const miniConstants = `{"constants":{"logEventTypes":{"URL_REQUEST_START_JOB":1,"REQUEST_ALIVE":2,"HTTP_TRANSACTION_READ_RESPONSE_HEADERS":3,"URL_REQUEST_JOB_BYTES_READ":4},"timeTickOffset":"1700000000000","netError":{"ERR_CONNECTION_RESET":-101}},"events":[`

func TestDamaged(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		flows  []string // key status error note
		skips  []skipped
		errStr string
	}{
		{
			name: "complete with an error",
			input: miniConstants +
				`{"type":2,"phase":1,"time":"10","source":{"id":5,"type":1}},` +
				`{"type":1,"phase":1,"time":"11","source":{"id":5,"type":1},"params":{"method":"get","url":"http://a.example:8080/x"}},` +
				`{"type":2,"phase":2,"time":"20","source":{"id":5,"type":1},"params":{"net_error":-101}}]}`,
			flows: []string{`req:5:event:2 0 "net::ERR_CONNECTION_RESET (-101)" ""`},
		},
		{
			name: "truncated log keeps open requests",
			input: miniConstants +
				`{"type":1,"phase":1,"time":"11","source":{"id":5,"type":1},"params":{"method":"GET","url":"https://a.example/"}},` +
				`{"type":3,"phase":0,"time":"12","source":{"id":5,"type":1},"params":{"headers":["HTTP/1.1 204"]}},` +
				`{"type":1,"phase":1,"time":"bad","source":{"id":6,"type":1},"params":{"url":"https://b.example/"}},` +
				`{"type":1,"phase":1,"time":13,"source":{"id":7,"type":1},"params":{"url":"https://c.example/"}},` +
				`{"type":1,"phase":1,"ti`,
			flows:  []string{`req:5:event:1 204 "" "the log ends before the request finished"`, `req:7:event:4 0 "" "the log ends before the request finished"`},
			skips:  []skipped{{Where: "event 3", Reason: `json: invalid number literal, trying to unmarshal "\"bad\"" into Number`}},
			errStr: "event 5 at offset",
		},
		{
			name:   "events first",
			input:  `{"events":[],"constants":{}}`,
			errStr: "offset 0x9: events come before constants",
		},
		{
			name:   "not a net-log",
			input:  `{"log":{}}`,
			errStr: `not a net-log: no "events" array`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flows, skips, err := readBytes(t, []byte(tt.input))
			var got []string
			for _, f := range flows {
				got = append(got, f.Key+" "+itoa(f.Status)+" "+quote(f.Error)+" "+quote(f.Note))
			}
			if !slices.Equal(got, tt.flows) {
				t.Errorf("flows\n got %q\nwant %q", got, tt.flows)
			}
			if !slices.Equal(skips, tt.skips) {
				t.Errorf("skips %q, want %q", skips, tt.skips)
			}
			if (err == nil) != (tt.errStr == "") || err != nil && !strings.Contains(err.Error(), tt.errStr) {
				t.Errorf("error %v, want %q", err, tt.errStr)
			}
		})
	}
}

func TestEmitError(t *testing.T) {
	data, _ := os.ReadFile("testdata/chrome-netlog-google-homepage.json")
	stop := errors.New("stop")
	n := 0
	err := Read(context.Background(), bytes.NewReader(data), func(flow.Flow) error { n++; return stop }, func(string, error) {})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d flows", err, n)
	}
}

func itoa(n int) string     { return strconv.Itoa(n) }
func quote(s string) string { return strconv.Quote(s) }

// A long run of damaged events ends the read, naming where the run began;
// events of types the reader does not use are not damaged.
func TestUnreadableRun(t *testing.T) {
	start := `{"type":1,"phase":1,"time":"11","source":{"id":5,"type":1},"params":{"method":"GET","url":"https://a.example/"}}`
	other := `{"type":9,"phase":0,"time":"12","source":{"id":6,"type":1}}`
	for _, tt := range []struct {
		input string
		flows int
		err   string
	}{
		{miniConstants + start + strings.Repeat(",1", stretch.MaxRecords+5) + "]}", 1,
			"event 100001: no readable record in 100000 events (since event 2, offset " + itoa(len(miniConstants+start)) + "): giving up; is the rest net-log events?"},
		{miniConstants + start + strings.Repeat(","+other, stretch.MaxRecords+5) + "]}", 1, ""},
	} {
		flows, _, err := readBytes(t, []byte(tt.input))
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if len(flows) != tt.flows || gotErr != tt.err {
			t.Errorf("%d flows, error %q; want %d, %q", len(flows), gotErr, tt.flows, tt.err)
		}
	}
}

// TestTimeGoesBack: events come in the order Chrome logged them, so an
// event dated before the start of its request is damage; the request then
// ends where it started, never before (importtest.Check's invariant).
func TestTimeGoesBack(t *testing.T) {
	data := miniConstants + `{"type":1,"phase":1,"time":"1500","source":{"id":5},"params":{"url":"http://a.example/"}},` +
		`{"type":2,"phase":2,"time":"9","source":{"id":5}},` +
		`{"type":1,"phase":1,"time":"1500","source":{"id":6},"params":{"url":"http://b.example/"}},` +
		`{"type":1,"phase":1,"time":"9","source":{"id":6},"params":{"url":"http://c.example/"}}]}`
	flows, skips, err := readBytes(t, []byte(data))
	if err != nil || len(skips) != 0 || len(flows) != 3 {
		t.Fatalf("%d flows, skips %v, error %v", len(flows), skips, err)
	}
	for _, f := range flows[:2] {
		if !f.End.Equal(f.Start) {
			t.Errorf("%s: start %v, end %v; want the end at the start", f.Host, f.Start, f.End)
		}
	}
	importtest.Check(t, flows)
}

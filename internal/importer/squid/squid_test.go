package squid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// externalFile returns the path of a file under ../shared/testdata/external
// relative to the repository root, or skips the test when it is absent (the
// squid samples are Elastic-licensed and are not copied into this project).
func externalFile(t testing.TB, rel string) string {
	t.Helper()
	p, ok := testutil.SharedPath(t, "testdata", "external", rel)
	if !ok {
		t.Skipf("external test data %s is absent (it is not copied into the project: Elastic License 2.0)", p)
	}
	return p
}

type skipped = importtest.Skip

func readAll(t testing.TB, data []byte) ([]flow.Flow, []skipped, error) {
	t.Helper()
	var c importtest.Collector
	err := Read(context.Background(), bytes.NewReader(data), c.Emit, c.Skip)
	return c.Flows, c.Skips, err
}

func TestElasticAccessLog(t *testing.T) {
	data, err := os.ReadFile(externalFile(t, "squid/elastic_test-access.log"))
	if err != nil {
		t.Fatal(err)
	}
	flows, skips, err := readAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(skips) != 0 {
		t.Errorf("skipped %v, want none", skips)
	}
	if len(flows) != 100 {
		t.Fatalf("got %d flows, want 100", len(flows))
	}
	importtest.Check(t, flows)
	codes := map[string]int{}
	methods := map[string]int{}
	var connects []string
	denied := 0
	minEnd, maxEnd := flows[0].End, flows[0].End
	for i, f := range flows {
		if want := fmt.Sprintf("line:%d", i+1); f.Key != want {
			t.Errorf("flow %d key %q, want %q", i, f.Key, want)
		}
		if f.Source != flow.SourceSquid {
			t.Errorf("flow %d source %q", i, f.Source)
		}
		code, _, _ := strings.Cut(strings.TrimPrefix(f.Note, "squid "), " ")
		codes[fmt.Sprintf("%s/%d", code, f.Status)]++
		methods[f.Method]++
		if f.Method == "CONNECT" {
			if f.Kind != flow.KindConnect {
				t.Errorf("line %d: CONNECT has kind %q", i+1, f.Kind)
			}
			connects = append(connects, fmt.Sprintf("%s:%d %s/%d", f.Host, f.Port, code, f.Status))
		}
		if f.Decision == flow.DecisionDenied {
			denied++
			if f.Reason != "squid TCP_DENIED/407 (proxy authentication required)" {
				t.Errorf("line %d: reason %q", i+1, f.Reason)
			}
		}
		if f.End.Before(minEnd) {
			minEnd = f.End
		}
		if f.End.After(maxEnd) {
			maxEnd = f.End
		}
		if f.Start.After(f.End) {
			t.Errorf("line %d: start %v after end %v", i+1, f.Start, f.End)
		}
	}
	wantCodes := map[string]int{
		"TCP_MISS/200": 40, "TCP_DENIED/407": 15, "TCP_REFRESH_HIT/304": 14, "TCP_HIT/200": 10,
		"TCP_IMS_HIT/304": 7, "TCP_MISS/304": 7, "TCP_MISS/302": 5, "TCP_REFRESH_MISS/200": 1,
		"TCP_SWAPFAIL_MISS/200": 1,
	}
	if !mapsEqual(codes, wantCodes) {
		t.Errorf("result codes %v, want %v", codes, wantCodes)
	}
	wantMethods := map[string]int{"GET": 81, "POST": 10, "CONNECT": 9}
	if !mapsEqual(methods, wantMethods) {
		t.Errorf("methods %v, want %v", methods, wantMethods)
	}
	wantConnects := []string{
		"login.yahoo.com:443 TCP_MISS/200",
		"us.bc.yahoo.com:443 TCP_MISS/200",
		"login.yahoo.com:443 TCP_MISS/200",
		"us.mcafee.com:443 TCP_DENIED/407",
		"us.mcafee.com:443 TCP_DENIED/407",
		"us.mcafee.com:443 TCP_DENIED/407",
		"pclick.internal.yahoo.com:443 TCP_MISS/200",
		"login.yahoo.com:443 TCP_MISS/200",
		"login.live.com:443 TCP_DENIED/407",
	}
	if !slices.Equal(connects, wantConnects) {
		t.Errorf("CONNECT lines\n got %q\nwant %q", connects, wantConnects)
	}
	if denied != 15 {
		t.Errorf("%d denied, want 15", denied)
	}
	if want := time.Unix(1157689312, 49e6).UTC(); !minEnd.Equal(want) {
		t.Errorf("first logged time %v, want %v", minEnd, want)
	}
	if want := time.Unix(1157689387, 832e6).UTC(); !maxEnd.Equal(want) {
		t.Errorf("last logged time %v, want %v", maxEnd, want)
	}
	// The first line: 1157689312.049   5006 10.105.21.199 TCP_MISS/200 19763 CONNECT login.yahoo.com:443 badeyek DIRECT/175.16.199.115 -
	f := flows[0]
	if want := time.Unix(1157689307, 43e6).UTC(); !f.Start.Equal(want) || f.Start.Location() != time.UTC {
		t.Errorf("first start %v, want logged time − 5006 ms = %v UTC", f.Start, want)
	}
	if f.Client != "10.105.21.199" || f.BytesDown != 19763 || f.Decision != flow.DecisionAllowed ||
		f.Note != "squid TCP_MISS DIRECT/175.16.199.115 user badeyek" {
		t.Errorf("first flow %+v", f)
	}
}

// The extensive file uses a custom logformat (a client port after the
// client, more sizes, quoted headers). Its lines are skipped, each with a
// reason that names the field that did not fit, and nothing is made up.
func TestElasticExtensiveIsUnknownLayout(t *testing.T) {
	data, err := os.ReadFile(externalFile(t, "squid/elastic_test-access-extensive.log"))
	if err != nil {
		t.Fatal(err)
	}
	flows, skips, err := readAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 0 {
		t.Errorf("got %d flows from a custom layout, want 0", len(flows))
	}
	if len(skips) != 11 {
		t.Fatalf("got %d skipped lines, want 11: %v", len(skips), skips)
	}
	for i, s := range skips {
		if s.Where != fmt.Sprintf("line %d", i+1) {
			t.Errorf("skip %d at %q", i, s.Where)
		}
		if !strings.Contains(s.Reason, "custom logformat") {
			t.Errorf("skip %d reason %q does not point at the custom logformat", i, s.Reason)
		}
	}
	if !strings.Contains(skips[0].Reason, `field 4 (result code/status) "58938"`) {
		t.Errorf("first reason %q", skips[0].Reason)
	}
}

func TestParseLine(t *testing.T) {
	utc := func(sec, ms int64) time.Time { return time.Unix(sec, ms*1e6).UTC() }
	tests := []struct {
		name string
		line string
		want flow.Flow
	}{
		{
			name: "tunnel with sni",
			line: "1700000000.500    250 192.168.1.20 TCP_TUNNEL/200 6120 CONNECT login.microsoftonline.com:443 - HIER_DIRECT/20.190.160.1 - login.microsoftonline.com",
			want: flow.Flow{Start: utc(1700000000, 250), End: utc(1700000000, 500), Client: "192.168.1.20", Source: flow.SourceSquid,
				Kind: flow.KindConnect, Method: "CONNECT", Host: "login.microsoftonline.com", Port: 443, Status: 200, BytesDown: 6120,
				SNI: "login.microsoftonline.com", Decision: flow.DecisionAllowed, Note: "squid TCP_TUNNEL HIER_DIRECT/20.190.160.1"},
		},
		{
			name: "denied 403",
			line: "1700000001.000      0 192.168.1.20 TCP_DENIED/403 3900 GET http://Blocked.Example:8080/x?y=1 - HIER_NONE/- text/html",
			want: flow.Flow{Start: utc(1700000001, 0), End: utc(1700000001, 0), Client: "192.168.1.20", Source: flow.SourceSquid,
				Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: "blocked.example", Port: 8080, URL: "http://Blocked.Example:8080/x?y=1",
				Status: 403, BytesDown: 3900, Decision: flow.DecisionDenied, Reason: "squid TCP_DENIED/403 (forbidden by access rules)",
				Note: "squid TCP_DENIED HIER_NONE/-"},
		},
		{
			name: "aborted, ipv6 client, https url",
			line: "1700000002.123 10 2001:db8::1 TCP_MISS_ABORTED/000 0 GET https://[2001:db8::2]/a - HIER_DIRECT/2001:db8::2 -",
			want: flow.Flow{Start: utc(1700000002, 113), End: utc(1700000002, 123), Client: "2001:db8::1", Source: flow.SourceSquid,
				Kind: flow.KindHTTP, Method: "GET", Scheme: "https", Host: "2001:db8::2", Port: 443, URL: "https://[2001:db8::2]/a",
				Decision: flow.DecisionAllowed, Error: "aborted (squid TCP_MISS_ABORTED)", Note: "squid TCP_MISS_ABORTED HIER_DIRECT/2001:db8::2"},
		},
		{
			name: "connection without a request (squid 5)",
			line: "1795642746.750      0 127.0.0.1 NONE_NONE/000 0 - error:transaction-end-before-headers - HIER_NONE/- -",
			want: flow.Flow{Start: utc(1795642746, 750), End: utc(1795642746, 750), Client: "127.0.0.1", Source: flow.SourceSquid,
				Kind: flow.KindTCP, Error: "no request (squid error:transaction-end-before-headers)", Note: "squid NONE_NONE HIER_NONE/-"},
		},
		{
			name: "common",
			line: `10.0.0.5 - alice [08/Sep/2006:06:21:52 +0200] "GET http://www.example.com/ HTTP/1.1" 200 1234 TCP_MISS:HIER_DIRECT`,
			want: flow.Flow{Start: time.Date(2006, 9, 8, 6, 21, 52, 0, time.FixedZone("", 7200)), End: time.Date(2006, 9, 8, 6, 21, 52, 0, time.FixedZone("", 7200)),
				Client: "10.0.0.5", Source: flow.SourceSquid, Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: "www.example.com", Port: 80,
				URL: "http://www.example.com/", Status: 200, BytesDown: 1234, Decision: flow.DecisionAllowed, Note: "squid TCP_MISS, duration unknown user alice"},
		},
		{
			name: "combined, denied connect",
			line: `10.0.0.5 - - [08/Sep/2006:04:21:52 +0000] "CONNECT evil.example:443 HTTP/1.1" 407 3000 "-" "curl/8.0" TCP_DENIED:HIER_NONE`,
			want: flow.Flow{Start: time.Date(2006, 9, 8, 4, 21, 52, 0, time.UTC), End: time.Date(2006, 9, 8, 4, 21, 52, 0, time.UTC),
				Client: "10.0.0.5", Source: flow.SourceSquid, Kind: flow.KindConnect, Method: "CONNECT", Host: "evil.example", Port: 443,
				Status: 407, BytesDown: 3000, Decision: flow.DecisionDenied, Reason: "squid TCP_DENIED/407 (proxy authentication required)",
				Note: "squid TCP_DENIED, duration unknown"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Parser
			var got flow.Flow
			if err := p.ParseLine(tt.line, &got); err != nil {
				t.Fatal(err)
			}
			if !got.Start.Equal(tt.want.Start) || !got.End.Equal(tt.want.End) {
				t.Errorf("times %v..%v, want %v..%v", got.Start, got.End, tt.want.Start, tt.want.End)
			}
			_, gotOff := got.Start.Zone()
			_, wantOff := tt.want.Start.Zone()
			if gotOff != wantOff {
				t.Errorf("zone offset %d, want %d", gotOff, wantOff)
			}
			got.Start, got.End, tt.want.Start, tt.want.End = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if !flow.Same(got, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestBadLines(t *testing.T) {
	input := strings.Join([]string{
		"1157689312.049   5006 10.105.21.199 TCP_MISS/200 19763 CONNECT login.yahoo.com:443 badeyek DIRECT/175.16.199.115 -",
		"garbage here",
		"",
		"# a comment",
		"1157689312.049   5006 10.105.21.199 TCP_MISS/2x0 19763 GET http://a/ - DIRECT/1.2.3.4 -",
		"1157689312.049   5006 10.105.21.199 TCP_MISS/200 19763 GET",
		"1157689313.000   1 10.105.21.199 TCP_HIT/200 10 GET http://b/ - NONE/- text/html",
		"1157689314.000   1 10.105.21.199 TCP_HIT/200 10 GET http://c/ - NONE/- text/htm", // truncated last line, no newline
	}, "\n")
	flows, skips, err := readAll(t, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range flows {
		keys = append(keys, f.Key)
	}
	if want := []string{"line:1", "line:7", "line:8"}; !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	want := []skipped{
		{Where: "line 2", Reason: `not a Squid native, common or combined line: first field "garbage" is neither a Unix time nor a client followed by [time]`},
		{Where: "line 5", Reason: `field 4 (result code/status) "TCP_MISS/2x0": status is not a 3-digit number (a custom logformat? see docs/squid.md)`},
		{Where: "line 6", Reason: `native line has 6 fields, want 10 (time elapsed client code/status bytes method URL user hierarchy/peer type) or 11 (… sni)`},
	}
	if !slices.Equal(skips, want) {
		t.Errorf("skips\n got %q\nwant %q", skips, want)
	}
}

func TestLongLineIsSkipped(t *testing.T) {
	good := "1157689313.000   1 10.105.21.199 TCP_HIT/200 10 GET http://b/ - NONE/- text/html\n"
	input := good + strings.Repeat("x", maxLine+10) + "\n" + good
	flows, skips, err := readAll(t, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 2 || flows[1].Key != "line:3" {
		t.Errorf("flows %d (last key %q), want 2 ending at line:3", len(flows), flows[len(flows)-1].Key)
	}
	if len(skips) != 1 || skips[0].Where != "line 2" {
		t.Errorf("skips %v, want one at line 2", skips)
	}
}

func TestEmitErrorStops(t *testing.T) {
	stop := errors.New("store full")
	input := strings.Repeat("1157689313.000   1 10.105.21.199 TCP_HIT/200 10 GET http://b/ - NONE/- text/html\n", 3)
	n := 0
	err := Read(context.Background(), strings.NewReader(input), func(flow.Flow) error { n++; return stop }, func(string, error) {})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d flows, want %v after 1", err, n, stop)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestIncDecimal(t *testing.T) {
	for _, n := range []int{1, 8, 9, 10, 99, 199, 999, 1009, 99999, 123456789} {
		got := string(incDecimal([]byte(strconv.Itoa(n))))
		if want := strconv.Itoa(n + 1); got != want {
			t.Errorf("incDecimal(%d) = %s, want %s", n, got, want)
		}
	}
}

// TestKeysAcrossGaps checks the keys, whose numbers are counted up rather
// than formatted, across runs of blank lines short and long and across
// the points where the number gains a digit.
func TestKeysAcrossGaps(t *testing.T) {
	const line = "1157689312.049 5006 10.105.21.199 TCP_MISS/200 19763 CONNECT login.yahoo.com:443 - DIRECT/175.16.199.115 -"
	at := []int{1, 2, 9, 10, 11, 27, 99, 100, 101, 999, 1000, 1001, 20000, 20001, 99999, 100000, 100017}
	var b strings.Builder
	var want []string
	n := 0
	for _, l := range at {
		for n++; n < l; n++ {
			b.WriteString("\n")
		}
		b.WriteString(line + "\n")
		want = append(want, "line:"+strconv.Itoa(l))
	}
	var got []string
	err := Read(context.Background(), strings.NewReader(b.String()), func(f flow.Flow) error {
		got = append(got, f.Key)
		return nil
	}, func(w string, err error) { t.Errorf("%s: %v", w, err) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("keys\n got %v\nwant %v", got, want)
	}
}

// TestUnixTimeCache reads times one after another with one Parser, which
// remembers the last whole second: every answer must be parseUnix's.
func TestUnixTimeCache(t *testing.T) {
	in := []string{
		"1700000000.123", "1700000000.999", "1700000000.", "1700000000", "1700000000.1234567891",
		"1700000000.12x", "1700000000.1.2", ".5", "1700000000.5", "17000000000.5", "1700000001.000",
		"170000000.5", "1700000001.5", "x1700000001.5", "123456789012.1", "1234567890123.1", "1700000001.-",
	}
	var p Parser
	for _, b := range in {
		got, gotErr := p.unixTime(b)
		want, wantErr := parseUnix(b)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("unixTime(%q) = %v, %v; parseUnix: %v, %v", b, got, gotErr, want, wantErr)
		}
	}
}

package squid

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
)

// extensiveFormat is the logformat of elastic_test-access-extensive.log as
// far as its fields show: client port after the client, more sizes, HTTP
// version, server port, quoted Referer, User-Agent, Host and XFF, and
// fields pilotwire ignores.
const extensiveFormat = `%ts.%03tu %6tr %>a %>p %Ss/%03>Hs %<st %>st %<sh %>sh %<bs %rm %ru %rv %[un %Sh/%<a %<p %mt %x1 %x2 "%{Referer}>h" "%{User-Agent}>h" "%{Host}>h" "%{X-Forwarded-For}>h"`

func readLayout(t testing.TB, data []byte, spec string) ([]flow.Flow, []skipped, error) {
	t.Helper()
	l, err := ParseLogformat(spec)
	if err != nil {
		t.Fatal(err)
	}
	var c importtest.Collector
	err = ReadLayout(context.Background(), bytes.NewReader(data), l, c.Emit, c.Skip)
	return c.Flows, c.Skips, err
}

// With its logformat given, the custom-layout sample imports whole; the
// expectations are those of ../shared/testdata/external/README.md.
func TestElasticExtensiveWithLogformat(t *testing.T) {
	data, err := os.ReadFile(externalFile(t, "squid/elastic_test-access-extensive.log"))
	if err != nil {
		t.Fatal(err)
	}
	flows, skips, err := readLayout(t, data, "logformat extensive "+extensiveFormat)
	if err != nil || len(skips) != 0 {
		t.Fatalf("err %v, skipped %v", err, skips)
	}
	if len(flows) != 11 {
		t.Fatalf("%d flows, want 11", len(flows))
	}
	codes := map[string]int{}
	var connects []string
	for _, f := range flows {
		code, _, _ := strings.Cut(strings.TrimPrefix(f.Note, "squid "), " ")
		codes[fmt.Sprintf("%s/%d", code, f.Status)]++
		if f.Kind == flow.KindConnect {
			connects = append(connects, fmt.Sprintf("%s:%d", f.Host, f.Port))
		}
		if f.Client != "10.105.21.199" || f.ClientPort == 0 || f.BytesUp == 0 {
			t.Errorf("flow %+v", f)
		}
	}
	if want := map[string]int{"TCP_TUNNEL/200": 3, "TCP_MISS/200": 5, "TCP_MISS/404": 1, "TCP_MEM_HIT/200": 2}; !maps.Equal(codes, want) {
		t.Errorf("codes %v, want %v", codes, want)
	}
	if want := []string{"www.google.com:443", "api.github.com:443", "secure.example.com:443"}; !slices.Equal(connects, want) {
		t.Errorf("CONNECT targets %v, want %v", connects, want)
	}
	if !flows[0].End.Equal(time.Unix(1773416922, 391e6)) || !flows[10].End.Equal(time.Unix(1773416971, 500e6)) {
		t.Errorf("times %v … %v", flows[0].End, flows[10].End)
	}
	f := flows[1] // 1773416922.568    158 10.105.21.199 58948 TCP_TUNNEL/200 28854 2051 … CONNECT www.google.com:443 1.1 badeyek HIER_DIRECT/198.51.100.20 …
	if f.ClientPort != 58948 || f.BytesDown != 28854 || f.BytesUp != 2051 || f.Duration() != 158*time.Millisecond ||
		f.Note != "squid TCP_TUNNEL HIER_DIRECT/198.51.100.20 user badeyek" || f.Decision != flow.DecisionAllowed {
		t.Errorf("tunnel %+v", f)
	}
}

func TestLayoutLines(t *testing.T) {
	tests := []struct {
		name, spec, line string
		want             string // kind method host:port status client:port sni
		err              string
	}{
		{"native with sni", `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt %ssl::>sni`,
			"1700000000.500    250 192.168.1.20 TCP_TUNNEL/200 6120 CONNECT login.microsoftonline.com:443 - HIER_DIRECT/20.190.160.1 - Login.MicrosoftOnline.com",
			"connect CONNECT login.microsoftonline.com:443 200 192.168.1.20:0 login.microsoftonline.com", ""},
		{"local time, quoted request, separate code and status", `%>a %>p [%tl] "%rm %ru HTTP/%rv" %>Hs %<st "%{User-Agent}>h" %Ss`,
			`10.0.0.5 50000 [08/Sep/2006:06:21:52 +0200] "GET http://a.example/x HTTP/1.1" 403 12 "Mozilla/5.0 (Windows NT 10.0)" TCP_DENIED`,
			"http GET a.example:80 403 10.0.0.5:50000 ", ""},
		{"too few fields", `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru`, "1700000000.500 250 10.0.0.1 TCP_MISS/200 12 GET", "", "6 fields, the logformat needs at least 7"},
		{"bad status", `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru`, "1700000000.500 250 10.0.0.1 TCP_MISS 12 GET http://a/", "", `field 4 "TCP_MISS": want CODE/STATUS such as TCP_MISS/200`},
		{"unclosed quote", `%ts %tr %>a %Ss/%>Hs %<st %rm %ru "%{Referer}>h"`, `1700000000 1 10.0.0.1 TCP_MISS/200 1 GET http://a/ "http://b/`, "", `field 8: "\"" is not closed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLogformat(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			p := Parser{Layout: l}
			var f flow.Flow
			err = p.ParseLine(tt.line, &f)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Errorf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%s %s %s:%d %d %s:%d %s", f.Kind, f.Method, f.Host, f.Port, f.Status, f.Client, f.ClientPort, f.SNI)
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseLogformatErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"":                           "logformat is empty",
		"%>a %rm %ru":                `logformat "%>a %rm %ru" has no time (%ts or [%tl])`,
		"%ts %>a %ru":                `logformat "%ts %>a %ru" has no method and URL (%rm %ru)`,
		`%ts %rm %ru "%{Referer}>h`:  `logformat "%ts %rm %ru \"%{Referer}>h": field 4: "\"" is not closed`,
		"%ts %rm %ru %ru":            `logformat field 4 "%ru": a second field for the same thing`,
		`%ts [%tl] %rm %ru`:          `logformat "%ts [%tl] %rm %ru" has two times (%ts and [%tl]): keep one`,
		`%ts %rm "%rm %ru HTTP/%rv"`: `logformat "%ts %rm \"%rm %ru HTTP/%rv\"" has the request twice (%rm/%ru and a quoted request line): keep one`,
	} {
		if _, err := ParseLogformat(spec); err == nil || err.Error() != want {
			t.Errorf("ParseLogformat(%q) error %v, want %q", spec, err, want)
		}
	}
}

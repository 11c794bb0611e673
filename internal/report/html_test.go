package report_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// TestHTMLHostLabels: a host name is written label by label, each label
// kept whole and a break allowed only after its dot; a "label" longer than
// DNS allows (63 bytes) is no host name's and may break anywhere, so that
// it cannot widen the page. TestHTMLLayoutInChromium checks the wrapping
// itself in a browser.
func TestHTMLHostLabels(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", 64)
	var flows []flow.Flow
	for i, h := range []string{"validation-v2.sls.microsoft.com", long + ".example"} {
		s := start.Add(time.Duration(i) * time.Second)
		flows = append(flows, flow.Flow{ID: int64(i + 1), Start: s, End: s.Add(time.Second), Client: "10.0.0.9",
			Kind: flow.KindConnect, Method: "CONNECT", Host: h, Port: 443, SNI: h, Status: 200, BytesDown: 100})
	}
	tl, err := timeline.Build(flows, catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := report.HTML(&buf, tl, report.Options{}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		`<code class="host"><span class="label">validation-v2.</span><wbr><span class="label">sls.</span><wbr>` +
			`<span class="label">microsoft.</span><wbr><span class="label">com</span></code>`,
		`<code class="host"><span>` + long + `.</span><wbr><span class="label">example</span></code>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, `<span class="label">`+long) {
		t.Errorf("a %d-byte label is kept whole", len(long))
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/testutil"
)

// /metrics on the proxy's page: the flows it forwarded, counted, in a
// format promtool accepts.
func TestProxyMetrics(t *testing.T) {
	withStandIn(t)
	store := filepath.Join(t.TempDir(), "flows.db")
	addr, banner, stop := startInProcess(t, "--store", store, "--ui", "127.0.0.1:0")
	var page string
	for _, l := range banner {
		if _, after, ok := strings.Cut(l, "live page: "); ok {
			page = strings.TrimSuffix(after, "/")
		}
	}
	if page == "" {
		t.Fatalf("no page in %q", banner)
	}
	c := trusting(t, addr, nil)
	for range 3 {
		if err := get(c, "http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/authrootstl.cab"); err != nil {
			t.Fatal(err)
		}
	}
	// A flow is counted when the proxy records it, just after its answer:
	// scrape until the three are in (bounded).
	var text string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(page + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(body)
		if strings.Contains(text, `pilotwire_flows_total{decision="allowed",source="proxy"} 3`+"\n") || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{`pilotwire_flows_total{decision="allowed",source="proxy"} 3`, "pilotwire_requests_total 3",
		"pilotwire_flows_lost_total 0", "pilotwire_open_tunnels 0", "pilotwire_store_recording 1",
		`pilotwire_flow_bytes_total{direction="down"} 525` /* 3 × (29 body + the answer head) */} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in /metrics:\n%s", want, text)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The counters against the store: as many flows, as many bytes.
	out, _, err := runCmd(t, "--store", store, "flows", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var stored, down int64
	for line := range strings.Lines(out) {
		var f struct {
			BytesDown int64 `json:"bytes_down"`
		}
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatal(err)
		}
		stored++
		down += f.BytesDown
	}
	if want := fmt.Sprintf(`pilotwire_flows_total{decision="allowed",source="proxy"} %d`, stored); !strings.Contains(text, want+"\n") {
		t.Errorf("the store holds %d flows; /metrics says otherwise:\n%s", stored, text)
	}
	if want := fmt.Sprintf(`pilotwire_flow_bytes_total{direction="down"} %d`, down); !strings.Contains(text, want+"\n") {
		t.Errorf("the store's flows hold %d bytes down; /metrics says otherwise:\n%s", down, text)
	}
	cmd := exec.Command(testutil.LookPath(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

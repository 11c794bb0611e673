package export_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/export"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/har"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

func seedFlows(t *testing.T) []flow.Flow {
	t.Helper()
	f, err := os.Open("../timeline/testdata/seed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []flow.Flow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var fl flow.Flow
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			t.Fatal(err)
		}
		out = append(out, fl)
	}
	return out
}

// edgeFlows are the flows a HAR has no natural place for.
func edgeFlows() []flow.Flow {
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 123_000_000, time.FixedZone("", 3600))
	return []flow.Flow{
		{ID: 1, Start: t0, Client: "10.0.0.5", ClientPort: 50000, Kind: flow.KindConnect, Method: "CONNECT", Scheme: "https", Host: "enrollment.manage.microsoft.com",
			Port: 443, Status: 200, BytesUp: 900, SNI: "enrollment.manage.microsoft.com", ALPN: "h2", TLSVersion: "1.3", Decision: flow.DecisionAllowed}, // open
		{ID: 2, Start: t0, End: t0.Add(20 * time.Millisecond), Client: "10.0.0.5", Kind: flow.KindDNS, Host: "nx.example", Error: "no such host"},
		{ID: 3, Start: t0, End: t0.Add(time.Millisecond), Client: "10.0.0.5", Kind: flow.KindConnect, Method: "CONNECT", Scheme: "https", Host: "watson.telemetry.microsoft.com",
			Port: 443, Status: 403, Decision: flow.DecisionDenied, Reason: "not in the allowlist"},
		{ID: 4, Start: t0, End: t0.Add(2 * time.Second), Client: "2001:db8::5", Kind: flow.KindHTTP, Method: "GET", Scheme: "http", Host: "2001:db8::1", Port: 8080,
			URL: "http://[2001:db8::1]:8080/<script>alert(1)</script>?q=%22onerror%3D", Status: 0, Error: "connection reset", Device: `<b>vm</b>`},
		{ID: 5, Start: t0, End: t0.Add(3 * time.Second), Client: "10.0.0.5", Kind: flow.KindTLS, Host: "ztd.dds.microsoft.com", Port: 443, BytesUp: 1, BytesDown: 2,
			SNI: "ztd.dds.microsoft.com", Note: "pcap"},
		// A request read inside an intercepted tunnel, by a named proxy.
		{ID: 6, Start: t0, End: t0.Add(time.Second), Client: "10.0.0.5", Kind: flow.KindHTTP, Method: "POST", Scheme: "https",
			Host: "ztd.dds.microsoft.com", Port: 443, URL: "https://ztd.dds.microsoft.com/autopilot/register", Status: 200, BytesUp: 11, BytesDown: 30,
			Tunnel: "px-1-1", Proxy: "site-a", Decision: flow.DecisionAllowed, Note: "response application/json",
			Headers: "> Authorization: REDACTED\n> Content-Type: text/plain\n< Content-Type: application/json\n< MS-CV: x.1"},
	}
}

// TestHARHeadersAndBodies: an intercepted request's headers go in HAR's
// header lists, and kept bodies (exported with --bodies) in postData and
// content, base64 when not text, saying when they were cut.
func TestHARHeadersAndBodies(t *testing.T) {
	f := edgeFlows()[5]
	f.BytesDown = 100
	f.Bodies = flow.EncodeBodies(flow.Bodies{Request: []byte("hello world"), Response: []byte{0xff, 0, 1}})
	var buf bytes.Buffer
	if err := export.WriteHAR(context.Background(), &buf, export.HARInfo{}, func(fn func(*flow.Flow) error) error { return fn(&f) }); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Log struct {
			Entries []struct {
				Request struct {
					Headers  []map[string]string `json:"headers"`
					PostData map[string]string   `json:"postData"`
				} `json:"request"`
				Response struct {
					Headers []map[string]string `json:"headers"`
					Content map[string]any      `json:"content"`
				} `json:"response"`
			} `json:"entries"`
		} `json:"log"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	e := log.Log.Entries[0]
	if len(e.Request.Headers) != 2 || e.Request.Headers[0]["name"] != "Authorization" || e.Request.Headers[0]["value"] != "REDACTED" ||
		len(e.Response.Headers) != 2 || e.Response.Headers[1]["name"] != "MS-CV" {
		t.Errorf("headers: %v / %v", e.Request.Headers, e.Response.Headers)
	}
	if p := e.Request.PostData; p["text"] != "hello world" || p["mimeType"] != "text/plain" || p["comment"] != "" {
		t.Errorf("postData: %v", p)
	}
	c := e.Response.Content
	if c["text"] != "/wAB" || c["encoding"] != "base64" || c["mimeType"] != "application/json" || c["comment"] != "the first 3 of 100 bytes" {
		t.Errorf("content: %v", c)
	}
}

// TestHARRoundTrip: what WriteHAR writes, pilotwire's HAR importer reads
// back as the same flows (times to the millisecond, the source "har").
func TestHARRoundTrip(t *testing.T) {
	for name, flows := range map[string][]flow.Flow{"seed": seedFlows(t), "edges": edgeFlows()} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			err := export.WriteHAR(context.Background(), &buf, export.HARInfo{Version: "test", Comment: name}, func(fn func(*flow.Flow) error) error {
				for i := range flows {
					if err := fn(&flows[i]); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			checkHARShape(t, buf.Bytes(), len(flows))
			var got []flow.Flow
			err = har.Read(context.Background(), &buf, func(f flow.Flow) error { got = append(got, f); return nil },
				func(where string, err error) { t.Errorf("the importer skipped %s: %v", where, err) })
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(flows) {
				t.Fatalf("%d flows back, want %d", len(got), len(flows))
			}
			for i := range flows {
				w, g := flows[i], got[i]
				w.ID, w.Key, w.Source, w.SourceFile = 0, "", flow.SourceHAR, ""
				g.ID, g.Key = 0, ""
				w.Start, w.End = w.Start.Truncate(time.Millisecond), truncEnd(w.End)
				if !g.Start.Equal(w.Start) || !g.End.Equal(w.End) {
					t.Errorf("flow %d: times %s–%s back as %s–%s", i+1, w.Start, w.End, g.Start, g.End)
				}
				g.Start, g.End, w.Start, w.End = time.Time{}, time.Time{}, time.Time{}, time.Time{}
				if !flow.Same(g, w) {
					t.Errorf("flow %d:\n got %+v\nwant %+v", i+1, g, w)
				}
			}
		})
	}
}

func truncEnd(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(time.Millisecond)
}

// checkHARShape checks the fields HAR 1.2 requires, with their types, as a
// strict reader (a HAR validator, a browser's import) does.
func checkHARShape(t *testing.T, data []byte, n int) {
	t.Helper()
	var doc struct {
		Log struct {
			Version string `json:"version"`
			Creator *struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"creator"`
			Entries []map[string]json.RawMessage `json:"entries"`
		} `json:"log"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if doc.Log.Version != "1.2" || doc.Log.Creator == nil || doc.Log.Creator.Name != "pilotwire" || len(doc.Log.Entries) != n {
		t.Fatalf("log: version %q, creator %v, %d entries", doc.Log.Version, doc.Log.Creator, len(doc.Log.Entries))
	}
	for i, e := range doc.Log.Entries {
		for _, k := range []string{"startedDateTime", "time", "request", "response", "cache", "timings"} {
			if _, ok := e[k]; !ok {
				t.Errorf("entry %d has no %s", i, k)
			}
		}
		var req, resp map[string]any
		json.Unmarshal(e["request"], &req)
		json.Unmarshal(e["response"], &resp)
		for _, k := range []string{"method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize"} {
			if req[k] == nil {
				t.Errorf("entry %d: request has no %s", i, k)
			}
		}
		for _, k := range []string{"status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL", "headersSize", "bodySize"} {
			if resp[k] == nil {
				t.Errorf("entry %d: response has no %s", i, k)
			}
		}
		var timings map[string]float64
		json.Unmarshal(e["timings"], &timings)
		for _, k := range []string{"send", "wait", "receive"} {
			if v, ok := timings[k]; !ok || v < 0 {
				t.Errorf("entry %d: timings.%s = %v, want ≥ 0", i, k, v)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, string(bytes.Trim(e["startedDateTime"], `"`))); err != nil {
			t.Errorf("entry %d: startedDateTime: %v", i, err)
		}
	}
}

// TestHARValidator: a second HAR reader, the har-validator package from
// npm (its JSON schema of HAR 1.2), accepts what WriteHAR writes.
// scripts/test installs it and sets PILOTWIRE_HAR_VALIDATOR.
func TestHARValidator(t *testing.T) {
	node := testutil.LookPath(t, "node")
	dir := os.Getenv("PILOTWIRE_HAR_VALIDATOR")
	if dir == "" {
		dir, _ = filepath.Abs("../../.cache/npm/node_modules/har-validator")
	}
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
		testutil.Missing(t, "har-validator is not installed (scripts/test installs it from npm into .cache/npm)")
	}
	flows := append(seedFlows(t), edgeFlows()...)
	var buf bytes.Buffer
	if err := export.WriteHAR(context.Background(), &buf, export.HARInfo{Version: "test"}, func(fn func(*flow.Flow) error) error {
		for i := range flows {
			if err := fn(&flows[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.har")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `const v = require(process.argv[1]); const har = JSON.parse(require('fs').readFileSync(process.argv[2]));
v.har(har).then(() => { console.log('valid ' + har.log.entries.length); }, (e) => { console.log(JSON.stringify(e.errors || e.message)); process.exit(1); });`
	out, err := exec.Command(node, "-e", script, dir, path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != fmt.Sprintf("valid %d", len(flows)) {
		t.Fatalf("har-validator: %v\n%s", err, out)
	}
}

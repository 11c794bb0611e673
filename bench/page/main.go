// Command page measures the live page's flows view over a large store: the
// time of /api/flows for the first screen and for later pages, with and
// without filters, served in process by the real web.Server over a real
// SQLite store (make one with bench/report).
//
//	go run ./bench/report -store /tmp/1m.db          # 1,000,000 flows as live rows
//	go run ./bench/report -store /tmp/1mf.db -as-file  # ... as an import keeps them
//	go run ./bench/page -store /tmp/1m.db
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/web"
)

func main() {
	store := flag.String("store", "/tmp/1m.db", "the SQLite store to read")
	runs := flag.Int("runs", 5, "runs of each case")
	deep := flag.Int("deep", 50, "the page number of the deep-page cases")
	flag.Parse()
	if err := run(*store, *runs, *deep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/page:", err)
		os.Exit(1)
	}
}

func run(path string, runs, deep int) error {
	ctx := context.Background()
	st, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.CountFlows(ctx, flow.Filter{})
	if err != nil {
		return err
	}
	page, err := web.New(web.Options{Store: st, Catalog: catalog.Default(), Source: path})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(page)
	defer srv.Close()
	fmt.Printf("%s: %d flows, %d runs a case (min / median)\n\n", path, n, runs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tpage 1\tpage "+fmt.Sprint(deep)+"\trows\t")
	for _, c := range []struct{ name, query string }{
		{"no filter", "limit=100"},
		{"device", "limit=100&client=10.0.0.23"},
		{"service: office (common)", "limit=100&service=office"},
		{"service: autopilot (rare)", "limit=100&service=autopilot"},
		{"phase: mdm-enrollment", "limit=100&phase=mdm-enrollment"},
		{"text: manage (common)", "limit=100&q=manage"},
		{"text: contoso (rare)", "limit=100&q=contoso"},
		{"problems only", "limit=100&problems=1"},
		{"hide noise", "limit=100&noise=0"},
		{"device + service + problems", "limit=100&client=10.0.0.23&service=intune-checkin&problems=1"},
	} {
		first, rows, err := timeIt(srv.URL, c.query, 1, runs)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		later, _, err := timeIt(srv.URL, c.query, deep, runs)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t\n", c.name, first, later, rows)
	}
	return tw.Flush()
}

// timeIt times reading page p of query (following the cursors to it), the
// last request only, runs times.
func timeIt(base, query string, p, runs int) (string, int, error) {
	var times []time.Duration
	rows := 0
	for range runs {
		cursor := ""
		for i := 1; i <= p; i++ {
			q := query
			if cursor != "" {
				q += "&before=" + cursor
			}
			t0 := time.Now()
			resp, err := http.Get(base + "/api/flows?" + q)
			if err != nil {
				return "", 0, err
			}
			var body struct {
				Flows []json.RawMessage `json:"flows"`
				Next  *string           `json:"next"`
				Error string            `json:"error"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			took := time.Since(t0)
			if err != nil || body.Error != "" {
				return "", 0, fmt.Errorf("%v %s", err, body.Error)
			}
			if i == p {
				times = append(times, took)
				rows = len(body.Flows)
			}
			if body.Next == nil {
				if i < p {
					return "– (fewer pages)", rows, nil
				}
				break
			}
			cursor = *body.Next
		}
	}
	slices.Sort(times)
	return fmt.Sprintf("%d / %d ms", times[0].Milliseconds(), times[len(times)/2].Milliseconds()), rows, nil
}

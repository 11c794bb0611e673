// Command soak leaves the live page open in headless Chromium while flows
// go through the real proxy at a steady rate, and prints, every interval,
// pilotwire's resident memory and Go heap and the page's JavaScript heap
// and DOM size: both sides should stay flat after the first minute.
//
//	go run ./bench/soak                          # 2,000 req/s for 8 minutes: about 1,000,000 flows
//	go run ./bench/soak -minutes 2 -every 20s    # a shorter look
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/web"
)

func main() {
	minutes := flag.Float64("minutes", 8, "how long the load runs")
	rate := flag.Int("rate", 2000, "requests a second through the proxy")
	every := flag.Duration("every", 30*time.Second, "how often memory is read")
	flag.Parse()
	if err := run(time.Duration(*minutes*float64(time.Minute)), *rate, *every); err != nil {
		fmt.Fprintln(os.Stderr, "bench/soak:", err)
		os.Exit(1)
	}
}

func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

func run(d time.Duration, rate int, every time.Duration) error {
	dir, err := os.MkdirTemp("", "pilotwire-soak")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "soak.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	hub := live.NewHub(4, 0)
	rec := flow.NewRecorder(st, flow.RecorderOptions{Publish: hub.Publish})
	defer rec.Close()
	p := &proxy.Proxy{AllowPrivateTargets: true, Record: rec.Record}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go p.Serve(ln)
	page, err := web.New(web.Options{Store: st, Hub: hub, Catalog: catalog.Default(), Source: "soak"})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(page)
	defer srv.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer origin.Close()

	exe := "/usr/bin/chromium"
	actx, cancelA := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(exe), chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("no-first-run", true), chromedp.UserDataDir(filepath.Join(dir, "chrome")))
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/#/flows"), chromedp.WaitVisible(chromedp.CSS("#flows"))); err != nil {
		return fmt.Errorf("chromium: %w", err)
	}
	if _, err := chromedp.Call(bctx, performance.Enable, performance.EnableParams{}); err != nil {
		return fmt.Errorf("chromium: %w", err)
	}

	pu, _ := url.Parse("http://" + ln.Addr().String())
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: 64}}
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range 32 {
		wg.Go(func() {
			for {
				k := sent.Add(1) - 1
				due := start.Add(time.Duration(k) * time.Second / time.Duration(rate))
				select {
				case <-stop:
					return
				case <-time.After(time.Until(due)):
				}
				resp, err := c.Get(origin.URL + "/soak")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	fmt.Printf("%d req/s through the proxy for %s, the flows view open in Chromium (following)\n", rate, d)
	fmt.Printf("%8s %10s %12s %12s %14s %10s\n", "time", "flows", "RSS MiB", "Go heap MiB", "page JS MiB", "page rows")
	tick := time.NewTicker(every)
	defer tick.Stop()
	end := time.After(d)
	report := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var js float64
		var rows int
		if m, err := chromedp.Call(bctx, performance.GetMetrics, cdp.Empty{}); err == nil {
			for _, x := range m.Metrics {
				if x.Name == "JSHeapUsedSize" {
					js = x.Value
				}
			}
		}
		rows, _ = chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('#flows tbody tr').length`))
		n, _ := st.CountFlows(ctx, flow.Filter{})
		fmt.Printf("%8s %10d %12.1f %12.1f %14.1f %10d\n", time.Since(start).Round(time.Second), n, float64(rssKiB())/1024,
			float64(ms.HeapInuse)/(1<<20), js/(1<<20), rows)
	}
	for {
		select {
		case <-tick.C:
			report()
		case <-end:
			close(stop)
			wg.Wait()
			report()
			return nil
		}
	}
}

// Command live measures what the live page costs the proxy: the rate of
// small plain-HTTP GETs through the real proxy (recording into a real
// SQLite store, publishing to the page's hub) with no viewer and with five
// viewers reading the page's event stream, side by side in one run; and,
// with the viewers, the delay from a tunnel's end to its row updated in a
// viewer's stream (p50, p99).
//
//	go run ./bench/live                  # 3 rounds of 5 s each way, 32 clients
//	go run ./bench/live -rounds 5 -seconds 10 -clients 64
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
	"github.com/pilotwire/pilotwire/internal/web"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds of each kind (alternating)")
	seconds := flag.Int("seconds", 5, "seconds of load a round")
	clients := flag.Int("clients", 32, "concurrent clients")
	viewers := flag.Int("viewers", 5, "viewers of the page in the 'with' rounds")
	tunnels := flag.Int("tunnels", 200, "tunnels a 'with' round opens and closes, for the end-to-row delay")
	rate := flag.Int("rate", 2000, "requests a second the clients offer (0: as fast as they can)")
	flag.Parse()
	if err := run(*rounds, *seconds, *clients, *viewers, *tunnels, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "bench/live:", err)
		os.Exit(1)
	}
}

type rig struct {
	proxyAddr string
	pageURL   string
	origin    *httptest.Server
	echo      net.Listener
	hub       *live.Hub
}

func setup(dir string) (*rig, func(), error) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "live.db"))
	if err != nil {
		return nil, nil, err
	}
	hub := live.NewHub(16, 0)
	rec := flow.NewRecorder(st, flow.RecorderOptions{Publish: hub.Publish})
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	_, echoPort, _ := net.SplitHostPort(echo.Addr().String())
	ep, _ := strconv.Atoi(echoPort)
	p := &proxy.Proxy{AllowPrivateTargets: true, Record: rec.Record, ConnectPorts: []int{ep}, MaxConns: 10000}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	go p.Serve(ln)
	page, err := web.New(web.Options{Store: st, Hub: hub, Catalog: catalog.Default(), Source: "bench"})
	if err != nil {
		return nil, nil, err
	}
	srv := httptest.NewServer(page)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	stop := func() {
		srv.Close()
		origin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
		echo.Close()
		rec.Close()
		st.Close()
	}
	return &rig{proxyAddr: ln.Addr().String(), pageURL: srv.URL, origin: origin, echo: echo, hub: hub}, stop, nil
}

// viewer reads the page's event stream until ctx ends, calling onRow for
// every flow row.
// row is what a viewer here reads of a flow row (a browser reads it all).
type row struct {
	Kind       string `json:"kind"`
	Open       bool   `json:"open"`
	ClientPort int    `json:"client_port"`
}

func viewer(ctx context.Context, pageURL string, ready *sync.WaitGroup, onRow func(row)) {
	req, _ := http.NewRequestWithContext(ctx, "GET", pageURL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	ready.Done()
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
			continue
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok && event == "flows" {
			var body struct {
				Flows []row `json:"flows"`
			}
			if json.Unmarshal([]byte(v), &body) == nil {
				for _, r := range body.Flows {
					onRow(r)
				}
			}
		}
	}
}

func load(r *rig, clients, rate int, d time.Duration) float64 {
	pu, _ := url.Parse("http://" + r.proxyAddr)
	tr := &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var n atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var issued atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if rate > 0 {
					// Paced: request k goes at start + k/rate.
					k := issued.Add(1) - 1
					if wait := time.Until(start.Add(time.Duration(k) * time.Second / time.Duration(rate))); wait > 0 {
						time.Sleep(wait)
					}
					if !time.Now().Before(deadline) {
						return
					}
				}
				resp, err := c.Get(r.origin.URL + "/small")
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// tunnelDelays opens tunnels through the proxy to the echo server, one
// after another, and measures from each one's close to its closed row in a
// viewer's stream.
func tunnelDelays(r *rig, n int, closedAt *sync.Map, seen chan time.Duration) []time.Duration {
	var out []time.Duration
	for range n {
		c, err := net.Dial("tcp", r.proxyAddr)
		if err != nil {
			continue
		}
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", r.echo.Addr(), r.echo.Addr())
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			c.Close()
			continue
		}
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		io.ReadFull(br, buf)
		port := c.LocalAddr().(*net.TCPAddr).Port
		closedAt.Store(port, time.Now())
		c.Close()
		select {
		case d := <-seen:
			out = append(out, d)
		case <-time.After(5 * time.Second):
			out = append(out, 5*time.Second) // never seen: counted as the worst
		}
		time.Sleep(5 * time.Millisecond)
	}
	return out
}

func run(rounds, seconds, clients, viewers, tunnels, rate int) error {
	dir, err := os.MkdirTemp("", "pilotwire-bench-live")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r, stop, err := setup(dir)
	if err != nil {
		return err
	}
	defer stop()
	d := time.Duration(seconds) * time.Second
	var without, with []float64
	var delays []time.Duration
	for i := range rounds {
		without = append(without, load(r, clients, rate, d))

		ctx, cancel := context.WithCancel(context.Background())
		var ready sync.WaitGroup
		var closedAt sync.Map
		seen := make(chan time.Duration, 16)
		for v := range viewers {
			ready.Add(1)
			go viewer(ctx, r.pageURL, &ready, func(rw row) {
				if v != 0 || rw.Kind != "connect" || rw.Open {
					return
				}
				if t, ok := closedAt.LoadAndDelete(rw.ClientPort); ok {
					seen <- time.Since(t.(time.Time))
				}
			})
		}
		ready.Wait()
		with = append(with, load(r, clients, rate, d))
		if i == 0 || tunnels > 0 {
			delays = append(delays, tunnelDelays(r, tunnels/rounds+1, &closedAt, seen)...)
		}
		cancel()
		time.Sleep(200 * time.Millisecond)
	}
	slices.Sort(delays)
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	offered := "as fast as they can"
	if rate > 0 {
		offered = fmt.Sprintf("offering %d a second", rate)
	}
	fmt.Printf("small GETs through the proxy, %d clients %s, %d rounds of %d s each way (recording into SQLite)\n", clients, offered, rounds, seconds)
	fmt.Printf("  no viewer:  %s req/s (median %.0f)\n", list(without), med(without))
	fmt.Printf("  %d viewers: %s req/s (median %.0f)\n", viewers, list(with), med(with))
	fmt.Printf("  ratio with/without: %.3f (median of rounds)\n", med(with)/med(without))
	if len(delays) > 0 {
		p := func(q float64) time.Duration { return delays[min(len(delays)-1, int(q*float64(len(delays))))] }
		fmt.Printf("tunnel end -> closed row in a viewer's stream, %d tunnels: p50 %s, p99 %s, max %s\n",
			len(delays), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
	}
	return nil
}

func list(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return strings.Join(s, ", ")
}

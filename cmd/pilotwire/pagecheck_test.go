package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/check"
	"github.com/pilotwire/pilotwire/internal/sim"
	"github.com/pilotwire/pilotwire/internal/web"
)

// startServe runs `pilotwire serve` over store with extra flags in this
// process until the test ends, and returns the page's address.
func startServe(t *testing.T, store string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, append([]string{"--store", store, "serve", "--ui", "127.0.0.1:0"}, extra...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatal("serve printed nothing")
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(` on (http://127\.0\.0\.1:\d+)/$`).FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("serve's first line: %q", sc.Text())
	}
	return m[1]
}

// pageCheckReport is the page's check answer, as far as the tests read it.
type pageCheckReport struct {
	Ready    bool   `json:"ready"`
	Headline string `json:"headline"`
	Via      string `json:"via"`
	Hosts    int    `json:"hosts"`
	Failed   int    `json:"failed"`
	Phases   []struct {
		Hosts []struct {
			Host        string `json:"host"`
			Port        int    `json:"port"`
			Verdict     string `json:"verdict"`
			Problem     string `json:"problem"`
			Sentence    string `json:"sentence"`
			FromSession bool   `json:"from_session"`
		} `json:"hosts"`
	} `json:"phases"`
	Error string `json:"error"`
}

// postPageCheck starts the page's check of session n as the page does.
func postPageCheck(t *testing.T, page, n string) (int, pageCheckReport) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, page+"/api/sessions/"+n+"/check", nil)
	req.Header.Set(web.CheckHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep pageCheckReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rep
}

// TestServePageCheck: the page of `pilotwire serve` checks exactly the
// hosts of the seed's session, each the way the device reached it, on the
// stand-in internet (checkNetwork) where three of them are broken, and says
// of each what `pilotwire check` says: the three fail, with the reason,
// the 50 others pass.
func TestServePageCheck(t *testing.T) {
	in, err := sim.New()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	broken := map[string]string{
		// Not on the internet at all.
		"oem-agent.contoso-devices.example": "FAIL oem-agent.contoso-devices.example:443 does not resolve (no such host)",
		// Its name leads to a server with a certificate for another name.
		"enrollment.manage.microsoft.com": "FAIL enrollment.manage.microsoft.com:443 the certificate presented is for other names (wrong.example)",
		// Its address answers nothing on port 80.
		"www.msftconnecttest.com": "FAIL www.msftconnecttest.com:80 TCP connection to port 80 (198.19.255.1:80): connection refused",
	}
	port := map[string]int{} // every host of the session, and how the device reached it
	for _, f := range seedFlows(t) {
		if f.Host == "" || port[f.Host] != 0 {
			continue
		}
		port[f.Host] = 443
		if f.Scheme == "http" {
			port[f.Host] = 80
		}
		switch {
		case broken[f.Host] != "":
		case f.Scheme == "http":
			_, err = in.AddHTTP(f.Host, 80, ok)
		default:
			_, err = in.AddHTTPS(f.Host, 443, ok)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	wrong, err := in.AddHTTPS("wrong.example", 443, ok)
	if err != nil {
		t.Fatal(err)
	}
	in.Point("enrollment.manage.microsoft.com", wrong.Addr())
	in.Point("www.msftconnecttest.com", netip.MustParseAddr("198.19.255.1"))
	checkNetwork = func(o *check.Options) { o.Resolve, o.Dial, o.RootCAs = in.Resolve, in.Dial, in.CertPool() }
	defer func() { checkNetwork = nil }()

	page := startServe(t, seedStore(t))
	code, rep := postPageCheck(t, page, "1")
	if code != 200 {
		t.Fatalf("POST /api/sessions/1/check: %d %s", code, rep.Error)
	}
	got := map[string]string{}
	for _, ph := range rep.Phases {
		for _, h := range ph.Hosts {
			line := fmt.Sprintf("%s %s:%d", strings.ToUpper(h.Verdict), h.Host, h.Port)
			if h.Problem != "" {
				line += " " + h.Problem
			}
			got[h.Host] = line
			if !h.FromSession {
				t.Errorf("%s is not marked from_session", h.Host)
			}
			if h.Host == "enrollment.manage.microsoft.com" && h.Sentence != "Intune enrollment would fail: enrollment.manage.microsoft.com: the certificate presented is for other names (wrong.example)" {
				t.Errorf("enrollment's sentence: %q", h.Sentence)
			}
		}
	}
	if len(port) != 53 || len(got) != len(port) {
		t.Errorf("checked %d hosts, want the session's %d (53)", len(got), len(port))
	}
	for h, p := range port {
		want := broken[h]
		if want == "" {
			want = fmt.Sprintf("PASS %s:%d", h, p)
		}
		if got[h] != want {
			t.Errorf("%s:\n got %q\nwant %q", h, got[h], want)
		}
	}
	if rep.Ready || rep.Hosts != 53 || rep.Failed != 3 || rep.Via != "directly" || rep.Headline != "NOT READY: 3 of 53 hosts fail directly (0 warnings)" {
		t.Errorf("report: ready %v, %d hosts, %d failed, via %q, headline %q", rep.Ready, rep.Hosts, rep.Failed, rep.Via, rep.Headline)
	}
}

package pcap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
	"github.com/pilotwire/pilotwire/internal/testutil"
)

// got is one emitted flow with the numbers of the packets that carried
// its ClientHellos.
type got struct {
	f      flow.Flow
	hellos []int
}

type result struct {
	flows []got
	skips []string
	err   error
}

func readBytes(t testing.TB, data []byte) result {
	t.Helper()
	var res result
	res.err = read(context.Background(), bytes.NewReader(data), func(f flow.Flow, hellos []int) error {
		res.flows = append(res.flows, got{f, hellos})
		return nil
	}, func(where string, err error) {
		res.skips = append(res.skips, where+": "+err.Error())
	})
	return res
}

// externalDir is ../shared/testdata/external/pcap beside the repository.
func externalDir(t testing.TB) string {
	t.Helper()
	p, _ := testutil.SharedPath(t, "testdata", "external", "pcap")
	return p
}

// loadCapture reads a capture from testdata/ or, for ja4_* files, from the
// shared external directory, skipping the test when that is absent.
func loadCapture(t testing.TB, name string) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if strings.HasPrefix(name, "ja4_") {
		path = filepath.Join(externalDir(t), name)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && strings.HasPrefix(name, "ja4_") {
		t.Skipf("%s is not here (it is read from ../shared/testdata/external/pcap, FoxIO licence, not copied into the project): %v", name, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// hello is one ClientHello: the packet that completed it and its flow.
type hello struct {
	pkt int
	f   flow.Flow
}

// hellos returns the ClientHellos (over TCP, or QUIC) in the order of the
// packets that completed them, as tshark lists them.
func hellos(flows []got, quic bool) []hello {
	var out []hello
	for _, g := range flows {
		if (g.f.Kind == flow.KindQUIC) != quic {
			continue
		}
		for _, p := range g.hellos {
			out = append(out, hello{p, g.f})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].pkt < out[j].pkt })
	return out
}

func snis(gs []hello) []string {
	out := []string{}
	for _, g := range gs {
		s := g.f.SNI
		if s == "" {
			s = "<none>"
		}
		out = append(out, s)
	}
	return out
}

// requestKey spells a request as the external README does:
// "METHOD host[:port] path".
func requestKey(f flow.Flow) string {
	host := f.Host
	if f.Port != 80 {
		host = fmt.Sprintf("%s:%d", f.Host, f.Port)
	}
	path := f.URL
	if i := strings.Index(path, "://"); i >= 0 {
		path = path[i+3:]
		if j := strings.IndexByte(path, '/'); j >= 0 {
			path = path[j:]
		} else {
			path = "/"
		}
	}
	return f.Method + " " + host + " " + path
}

// expand turns "name ×3" shorthand into a list.
func expand(items ...string) []string {
	var out []string
	for _, it := range items {
		name, n := it, 1
		if i := strings.Index(it, " ×"); i > 0 {
			name = it[:i]
			fmt.Sscanf(it[i+len(" ×"):], "%d", &n)
		}
		for range n {
			out = append(out, name)
		}
	}
	return out
}

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05.000000", s)
	if err != nil {
		panic(err)
	}
	return t
}

// The expectations come from ../shared/testdata/external/README.md
// (tshark 4.0); the QUIC SNI list of ja4_tls-sni.pcapng was read with
// tshark -Y 'tls.handshake.type==1 and udp' the same way.
var realCaptures = []struct {
	file        string
	first, last string // first and last packet, as capinfos prints them
	// exactSpan: the flows cover the first and the last packet (in the
	// other files those are ARP, STP, NetBIOS or a lone ACK).
	exactSpan bool
	tcpSNI    []string // TCP ClientHellos in frame order
	tls13     int      // how many of them offer TLS 1.3
	quicSNI   []string
	requests  int            // tshark http.request
	reqCounts map[string]int // some of the requests, "METHOD host path"
	dnsNames  []string       // unique query names, sorted, lower case
}{
	{
		file: "ja4_browsers-x509.pcapng", first: "2023-08-09 01:51:49.738087", last: "2023-08-09 01:53:18.416465", exactSpan: true,
		tcpSNI: []string{"edge.microsoft.com", "nym1-ib.adnxs.com", "lptag.liveperson.net"}, tls13: 3,
	},
	{
		file: "ja4_http1.pcapng", first: "2023-06-07 16:43:43.064826", last: "2023-06-07 16:45:49.556223",
		requests: 56,
		reqCounts: map[string]int{
			"POST unifi:8080 /inform":                          15,
			"POST 192.168.1.1:8080 /inform":                    11,
			"GET 192.168.1.1:41547 /rootDesc.xml":              8,
			"POST 192.168.1.1:41547 /ctl/IPConn":               6,
			"HEAD connectivitycheck.gstatic.com /generate_204": 2,
			"HEAD www.sony.net /":                              1,
			"GET resources-cdn.plexapp.com /hashes.json":       1,
		},
	},
	{
		file: "ja4_https-connect.pcap", first: "2019-09-02 18:56:53.383129", last: "2019-09-02 18:56:53.614664", exactSpan: true,
		tcpSNI: []string{"<none>"}, requests: 1,
		reqCounts: map[string]int{"CONNECT ts01-b.cloudsink.net:443 ts01-b.cloudsink.net:443": 1},
	},
	{
		file: "ja4_https3-301-get.pcap", first: "2013-11-25 16:27:01.013239", last: "2013-11-25 16:27:01.236922", exactSpan: true,
		tcpSNI: []string{"www.github.com"},
	},
	{
		file: "ja4_latest.pcapng", first: "2023-06-23 21:25:44.173804", last: "2023-06-23 21:25:49.802876", exactSpan: true,
		tcpSNI: []string{"pdx-col.eum-appdynamics.com", "discovery.cem.cloud.us", "app.slack.com",
			"ping-edge.smartscreen.microsoft.com", "data-edge.smartscreen.microsoft.com"},
		tls13: 4, requests: 4,
		reqCounts: map[string]int{"M-SEARCH 239.255.255.250:1900 *": 3, "GET apps.identrust.com /roots/dstrootcax3.p7c": 1},
		dnsNames: []string{"app.slack.com", "apps.identrust.com", "data-edge.smartscreen.microsoft.com",
			"discovery.cem.cloud.us", "pdx-col.eum-appdynamics.com", "ping-edge.smartscreen.microsoft.com",
			"wpad.bluecatlabs.net", "wpad.bluecatnetworks.corp", "wpad.home", "wpad.upmc.edu"},
	},
	{
		file: "ja4_quic-tls-handshake.pcapng", first: "2023-02-06 18:12:31.936380", last: "2023-02-06 18:12:31.936380", exactSpan: true,
		quicSNI: []string{"www.google.com"},
	},
	{
		file: "ja4_single-packets.pcap", first: "2018-07-25 13:31:50.773875", last: "2018-07-25 13:32:19.024427", exactSpan: true,
		requests: 8,
		reqCounts: map[string]int{
			"POST www.tamgrt.com /RT": 1,
		},
	},
	{
		file: "ja4_ssh2.pcapng", first: "2023-07-06 19:47:38.739182", last: "2023-07-06 19:48:35.194232",
		tcpSNI: []string{"updates.opendns.com", "mcs2-cloudstation-eu-west-1.prod.hydra.sophos.com",
			"self.events.data.microsoft.com", "www.bing.com", "4.sophosxl.net"},
		tls13:     1,
		quicSNI:   []string{"signaler-pa.clients6.google.com", "meet.google.com"},
		requests:  31,
		reqCounts: map[string]int{"GET www.msftconnecttest.com /connecttest.txt": 2},
		dnsNames: []string{"4.sophosxl.net", "api.opendns.com", "mcs2-cloudstation-eu-west-1.prod.hydra.sophos.com",
			"meet.google.com", "myip.opendns.com", "self.events.data.microsoft.com", "updates.opendns.com",
			"wpad.bluecatlabs.net", "wpad.bluecatnetworks.corp", "wpad.home", "wpad.upmc.edu", "www.msftconnecttest.com"},
	},
	{
		file: "ja4_tls-sni.pcapng", first: "2023-02-06 18:12:31.805776", last: "2023-02-06 18:12:53.281917", exactSpan: true,
		tcpSNI: expand("clientservices.googleapis.com", "www.google.com", "accounts.google.com", "www.googleapis.com", "lastpass.com",
			"lp-push-server-452.lastpass.com", "mtalk.google.com", "www.gstatic.com", "ogs.google.com", "aa.google.com",
			"safebrowsing.googleapis.com", "www.facebook.com", "static.xx.fbcdn.net ×6", "scontent-iad3-2.xx.fbcdn.net",
			"gateway.facebook.com", "scontent-lga3-2.xx.fbcdn.net", "scontent-mia3-2.xx.fbcdn.net",
			"scontent.fewr1-6.fna.fbcdn.net", "video-iad3-2.xx.fbcdn.net ×6", "content-autofill.googleapis.com",
			"edge-chat.facebook.com ×2", "www.microsoft.com", "statics-marketingsites-eus-ms-com.akamaized.net",
			"img-prod-cms-rt-microsoft-com.akamaized.net", "cdn-dynmedia-1.microsoft.com ×3", "mem.gfx.ms",
			"via.placeholder.com", "mem.gfx.ms", "wcpstatic.microsoft.com", "js.monitor.azure.com ×2", "mem.gfx.ms ×2",
			"login.live.com", "logincdn.msauth.net ×2", "mem.gfx.ms ×2", "target.microsoft.com", "www.apple.com",
			"is1-ssl.mzstatic.com ×2", "is2-ssl.mzstatic.com ×3", "is3-ssl.mzstatic.com ×3", "is2-ssl.mzstatic.com",
			"is5-ssl.mzstatic.com", "content-autofill.googleapis.com"),
		tls13: 64,
		quicSNI: []string{"www.google.com", "accounts.google.com", "www.googleapis.com", "update.googleapis.com",
			"encrypted-tbn0.gstatic.com", "history.google.com", "www.gstatic.com", "ogs.google.com", "aa.google.com",
			"content-autofill.googleapis.com", "encrypted-tbn0.gstatic.com", "safebrowsing.googleapis.com",
			"scontent-iad3-2.xx.fbcdn.net", "static.xx.fbcdn.net", "www.facebook.com", "static.xx.fbcdn.net",
			"video-iad3-2.xx.fbcdn.net", "content-autofill.googleapis.com", "optimizationguide-pa.googleapis.com",
			"lh5.googleusercontent.com"},
	},
	{
		file: "ja4_tls12.pcap", first: "2023-12-26 15:53:52.925092", last: "2023-12-26 15:53:52.925092", exactSpan: true,
		tcpSNI: []string{"contile.services.mozilla.com"}, tls13: 1,
	},
	{
		file: "zeek_http_connect-with-header.pcap", first: "2015-10-01 20:56:17.727740", last: "2015-10-01 20:56:18.418981", exactSpan: true,
		tcpSNI: []string{"secure.newegg.com"}, requests: 1,
		reqCounts: map[string]int{"CONNECT secure.newegg.com:443 secure.newegg.com:443": 1},
	},
	{
		file: "zeek_http_proxy.pcap", first: "2014-01-13 23:07:30.302092", last: "2014-01-13 23:07:30.522193", exactSpan: true,
		requests:  1,
		reqCounts: map[string]int{"GET bro.org /": 1},
	},
	{
		file: "zeek_http_vnd.ms-cab-compressed-multi-conn.pcap", first: "2009-11-19 01:52:13.195539", last: "2009-11-19 01:52:46.166098", exactSpan: true,
		requests:  5,
		reqCounts: map[string]int{"GET au.download.windowsupdate.com /msdownload/update/software/crup/2009/04/windows6.0-kb955430-x86-express_9c8a57958486102e94e591384dc69dd7e8d01169.cab": 5},
	},
	{
		file: "zeek_tls_tls13-ech.pcap", first: "2023-10-16 12:18:16.259279", last: "2023-10-16 12:18:23.253039", exactSpan: true,
		tcpSNI: []string{"cloudflare-ech.com", "cloudflare-ech.com"}, tls13: 2,
	},
	{
		file: "zeek_tls_tls13draft23-chrome67.0.3368.0-canary.pcap", first: "2018-03-12 02:00:13.483265", last: "2018-03-12 02:00:15.389722", exactSpan: true,
		tcpSNI: []string{"tls13.crypto.mozilla.org"},
	},
	{
		file: "zeek_wikipedia.pcap", first: "2011-03-18 19:06:07.096535", last: "2011-03-18 19:06:13.475401",
		requests:  15,
		reqCounts: map[string]int{"GET www.wikipedia.org /": 1},
		dnsNames: []string{"brwc0cb383d1f42", "gemini._sftp-ssh._tcp.local", "gomez._sftp-ssh._tcp.local",
			"meta.wikimedia.org", "upload.wikimedia.org", "upload.wikimedia.org.ncsa.uiuc.edu"},
	},
}

func TestRealCaptures(t *testing.T) {
	for _, tc := range realCaptures {
		t.Run(tc.file, func(t *testing.T) {
			res := readBytes(t, loadCapture(t, tc.file))
			if res.err != nil {
				t.Fatalf("Read: %v", res.err)
			}
			if len(res.skips) > 0 {
				t.Errorf("skipped packets: %q", res.skips)
			}
			flows := make([]flow.Flow, len(res.flows))
			for i, g := range res.flows {
				flows[i] = g.f
			}
			importtest.Check(t, flows)

			tcp := hellos(res.flows, false)
			if g := snis(tcp); !reflect.DeepEqual(g, append([]string{}, tc.tcpSNI...)) {
				t.Errorf("TCP ClientHello SNIs (%d):\n got %q\nwant %q", len(g), g, tc.tcpSNI)
			}
			n13 := 0
			for _, g := range tcp {
				if g.f.TLSVersion == "1.3" {
					n13++
				}
			}
			if n13 != tc.tls13 {
				t.Errorf("%d TCP ClientHellos offer TLS 1.3, want %d", n13, tc.tls13)
			}
			if g := snis(hellos(res.flows, true)); !reflect.DeepEqual(g, append([]string{}, tc.quicSNI...)) {
				t.Errorf("QUIC ClientHello SNIs:\n got %q\nwant %q", g, tc.quicSNI)
			}

			reqs := map[string]int{}
			nreq := 0
			names := map[string]bool{}
			first, last := time.Time{}, time.Time{}
			for _, g := range res.flows {
				f := g.f
				if f.Method != "" {
					nreq++
					reqs[requestKey(f)]++
				}
				if f.Kind == flow.KindDNS {
					names[f.Host] = true
				}
				if first.IsZero() || f.Start.Before(first) {
					first = f.Start
				}
				if f.End.After(last) {
					last = f.End
				}
				if f.Source != flow.SourcePcap || f.Key == "" || f.Client == "" || f.Host == "" || f.Start.IsZero() || f.End.Before(f.Start) {
					t.Errorf("incomplete flow %+v", f)
				}
				if f.Start.Location() != time.UTC {
					t.Errorf("flow %s start %v not in UTC", f.Key, f.Start)
				}
			}
			if nreq != tc.requests {
				t.Errorf("%d HTTP requests, want %d: %v", nreq, tc.requests, reqs)
			}
			for k, n := range tc.reqCounts {
				if reqs[k] != n {
					t.Errorf("%d × %q, want %d (all: %v)", reqs[k], k, n, reqs)
				}
			}
			gotNames := []string{}
			for n := range names {
				gotNames = append(gotNames, n)
			}
			sort.Strings(gotNames)
			if !reflect.DeepEqual(gotNames, append([]string{}, tc.dnsNames...)) {
				t.Errorf("DNS names:\n got %q\nwant %q", gotNames, tc.dnsNames)
			}

			wantFirst, wantLast := utc(tc.first), utc(tc.last)
			if tc.exactSpan {
				if !first.Equal(wantFirst) || !last.Equal(wantLast) {
					t.Errorf("flows span %v to %v, want %v to %v", first, last, wantFirst, wantLast)
				}
			} else if first.Before(wantFirst) || last.After(wantLast) || first.After(last) {
				t.Errorf("flows span %v to %v, outside the capture's %v to %v", first, last, wantFirst, wantLast)
			}

			keys := map[string]bool{}
			for _, g := range res.flows {
				if keys[g.f.Key] {
					t.Errorf("duplicate key %s", g.f.Key)
				}
				keys[g.f.Key] = true
			}
		})
	}
}

// find returns the flows that match.
func find(flows []got, match func(flow.Flow) bool) []flow.Flow {
	var out []flow.Flow
	for _, g := range flows {
		if match(g.f) {
			out = append(out, g.f)
		}
	}
	return out
}

// TestRealCaptureDetails checks single flows field by field.
func TestRealCaptureDetails(t *testing.T) {
	t.Run("connect over IPv6 loopback", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "zeek_http_connect-with-header.pcap"))
		if res.err != nil || len(res.flows) != 1 {
			t.Fatalf("err %v, %d flows, want 1", res.err, len(res.flows))
		}
		f := res.flows[0].f
		want := flow.Flow{
			Key:   "tcp:[::1]:52522-[::1]:80:1",
			Start: utc("2015-10-01 20:56:17.727740"), End: utc("2015-10-01 20:56:18.418981"),
			Client: "::1", ClientPort: 52522, Source: flow.SourcePcap, Kind: flow.KindConnect,
			Method: "CONNECT", Host: "secure.newegg.com", Port: 443, URL: "secure.newegg.com:443", Status: 200,
			BytesUp: f.BytesUp, BytesDown: f.BytesDown,
			SNI: "secure.newegg.com", ALPN: "h2,spdy/3.1,http/1.1", TLSVersion: "1.2",
		}
		if !reflect.DeepEqual(f, want) {
			t.Errorf("got  %+v\nwant %+v", f, want)
		}
		if f.BytesUp <= 0 || f.BytesDown <= f.BytesUp {
			t.Errorf("bytes up %d, down %d", f.BytesUp, f.BytesDown)
		}
	})
	t.Run("proxy request with absolute URI", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "zeek_http_proxy.pcap"))
		if res.err != nil || len(res.flows) != 1 {
			t.Fatalf("err %v, %d flows, want 1", res.err, len(res.flows))
		}
		f := res.flows[0].f
		if f.Client != "192.168.56.1" || f.ClientPort != 52679 || f.Kind != flow.KindHTTP || f.Method != "GET" ||
			f.URL != "http://bro.org/" || f.Host != "bro.org" || f.Port != 80 || f.Status != 200 || f.Scheme != "http" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("connect without Host header", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "ja4_https-connect.pcap"))
		fs := find(res.flows, func(f flow.Flow) bool { return f.Kind == flow.KindConnect })
		if len(fs) != 1 || fs[0].Host != "ts01-b.cloudsink.net" || fs[0].Port != 443 || fs[0].SNI != "" || fs[0].TLSVersion == "" {
			t.Errorf("connect flows %+v", fs)
		}
	})
	t.Run("windows update connections", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "zeek_http_vnd.ms-cab-compressed-multi-conn.pcap"))
		conns := map[string]bool{}
		for _, g := range res.flows {
			f := g.f
			if f.Client != "192.168.1.105" || f.Port != 80 || f.Host != "au.download.windowsupdate.com" || f.Status != 206 {
				t.Errorf("flow %+v", f)
			}
			conns[fmt.Sprint(f.Client, f.ClientPort)] = true
		}
		if len(conns) != 5 {
			t.Errorf("%d connections, want 5", len(conns))
		}
	})
	t.Run("ECH server", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "zeek_tls_tls13-ech.pcap"))
		for _, f := range find(res.flows, func(f flow.Flow) bool { return f.SNI != "" }) {
			if f.Port != 443 || f.Kind != flow.KindTLS || f.Host != "cloudflare-ech.com" || f.ALPN != "h2,http/1.1" {
				t.Errorf("flow %+v", f)
			}
		}
	})
	t.Run("draft 23 is not 1.3", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "zeek_tls_tls13draft23-chrome67.0.3368.0-canary.pcap"))
		fs := find(res.flows, func(f flow.Flow) bool { return f.SNI != "" })
		if len(fs) != 1 || fs[0].TLSVersion != "1.3-draft23" {
			t.Errorf("flows %+v", fs)
		}
	})
	t.Run("TLS 1.0 hello", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "ja4_https3-301-get.pcap"))
		fs := find(res.flows, func(f flow.Flow) bool { return f.SNI != "" })
		if len(fs) != 1 || fs[0].TLSVersion != "1.0" {
			t.Errorf("flows %+v", fs)
		}
	})
	t.Run("QUIC", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "ja4_quic-tls-handshake.pcapng"))
		fs := find(res.flows, func(f flow.Flow) bool { return true })
		want := flow.Flow{
			Key:   "udp:192.168.1.168:59102-142.251.163.147:443:1",
			Start: utc("2023-02-06 18:12:31.936380"), End: utc("2023-02-06 18:12:31.936380"),
			Client: "192.168.1.168", ClientPort: 59102, Source: flow.SourcePcap, Kind: flow.KindQUIC, Scheme: "https",
			Host: "www.google.com", Port: 443, BytesUp: 1250, SNI: "www.google.com", ALPN: "h3", TLSVersion: "1.3",
		}
		if len(fs) != 1 || !reflect.DeepEqual(fs[0], want) {
			t.Errorf("got  %+v\nwant %+v", fs, want)
		}
	})
	t.Run("named from DNS", func(t *testing.T) {
		// 146.112.255.155 is api.opendns.com's answer; the connection
		// to its port 1 carries no TLS or HTTP.
		res := readBytes(t, loadCapture(t, "ja4_ssh2.pcapng"))
		fs := find(res.flows, func(f flow.Flow) bool { return f.Note == "host named from DNS answer" })
		if len(fs) == 0 {
			t.Fatal("no flow named from DNS")
		}
		for _, f := range fs {
			if f.Host != "api.opendns.com" || f.Kind != flow.KindTCP {
				t.Errorf("flow %+v", f)
			}
		}
	})
	t.Run("DNS answer", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "zeek_wikipedia.pcap"))
		fs := find(res.flows, func(f flow.Flow) bool { return strings.HasPrefix(f.Key, "dns:141.142.220.118:40526-") })
		if len(fs) != 1 {
			t.Fatalf("flows %+v", fs)
		}
		f := fs[0]
		if f.Host != "upload.wikimedia.org" || f.Port != 53 || f.Note != "A query; answers 208.80.152.3" || f.Error != "" ||
			!f.Start.Equal(utc("2011-03-18 19:06:08.854837")) || !f.End.Equal(utc("2011-03-18 19:06:08.855229")) {
			t.Errorf("flow %+v", f)
		}
		nx := find(res.flows, func(f flow.Flow) bool { return f.Host == "upload.wikimedia.org.ncsa.uiuc.edu" })
		if len(nx) != 4 || nx[0].Error != "NXDOMAIN" {
			t.Errorf("NXDOMAIN flows %+v", nx)
		}
	})
	t.Run("keep-alive requests share the connection", func(t *testing.T) {
		res := readBytes(t, loadCapture(t, "zeek_wikipedia.pcap"))
		fs := find(res.flows, func(f flow.Flow) bool { return f.ClientPort == 49996 })
		if len(fs) != 2 {
			t.Fatalf("%d flows on port 49996, want 2", len(fs))
		}
		sort.Slice(fs, func(i, j int) bool { return fs[i].Start.Before(fs[j].Start) })
		if fs[0].Key != "tcp:141.142.220.118:49996-208.80.152.3:80:22" || fs[1].Key != fs[0].Key+"#2" {
			t.Errorf("keys %q %q", fs[0].Key, fs[1].Key)
		}
		// tshark -Y tcp.port==49996 -e tcp.srcport -e tcp.len, summed.
		up := fs[0].BytesUp + fs[1].BytesUp
		down := fs[0].BytesDown + fs[1].BytesDown
		if up != 1171 || down != 733 {
			t.Errorf("bytes up %d down %d, want 1171 and 733", up, down)
		}
		if fs[0].BytesUp != 588 || fs[0].BytesDown != 366 {
			t.Errorf("first request: bytes up %d down %d, want 588 and 366", fs[0].BytesUp, fs[0].BytesDown)
		}
	})
}

// TestReadAPI checks the exported Read: the flows it emits, an error from
// emit stopping it, a cancelled context, and Sniff.
func TestReadAPI(t *testing.T) {
	data := loadCapture(t, "zeek_wikipedia.pcap")
	var keys []string
	err := Read(context.Background(), bytes.NewReader(data), func(f flow.Flow) error {
		keys = append(keys, f.Key)
		return nil
	}, nil)
	if err != nil || len(keys) != 36 {
		t.Fatalf("Read: err %v, %d flows, want 36", err, len(keys))
	}
	// The same flows, with the same keys, a second time.
	var again []string
	Read(context.Background(), bytes.NewReader(data), func(f flow.Flow) error {
		again = append(again, f.Key)
		return nil
	}, nil)
	if !reflect.DeepEqual(keys, again) {
		t.Errorf("a second read gave other keys")
	}

	stop := errors.New("store full")
	n := 0
	err = Read(context.Background(), bytes.NewReader(data), func(flow.Flow) error {
		n++
		return stop
	}, nil)
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("emit error: got %v after %d flows, want %v after 1", err, n, stop)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Read(ctx, bytes.NewReader(data), func(flow.Flow) error { return nil }, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v", err)
	}

	for _, tc := range []struct {
		head []byte
		want bool
	}{
		{data[:4], true},
		{[]byte{0x0a, 0x0d, 0x0d, 0x0a}, true},
		{[]byte{0xa1, 0xb2, 0xc3, 0xd4}, true},
		{[]byte{0x4d, 0x3c, 0xb2, 0xa1}, true},
		{[]byte("GET "), false},
		{[]byte{0xd4, 0xc3}, false},
	} {
		if got := Sniff(tc.head); got != tc.want {
			t.Errorf("Sniff(% x) = %v, want %v", tc.head, got, tc.want)
		}
	}
}

// TestTruncatedRealCapture: a real capture cut in two yields the flows of
// its first half and an error that says where it broke off.
func TestTruncatedRealCapture(t *testing.T) {
	data := loadCapture(t, "zeek_wikipedia.pcap")
	full := readBytes(t, data)
	half := readBytes(t, data[:len(data)/2])
	if !errors.Is(half.err, io.ErrUnexpectedEOF) || !strings.Contains(half.err.Error(), "at offset ") {
		t.Fatalf("error %v, want a truncation with its offset", half.err)
	}
	if len(half.flows) == 0 || len(half.flows) >= len(full.flows) {
		t.Errorf("%d flows from half the file, %d from all of it", len(half.flows), len(full.flows))
	}
	// Every DNS flow of the first half is one of the whole file's.
	whole := map[string]bool{}
	for _, g := range full.flows {
		whole[g.f.Key] = true
	}
	for _, g := range half.flows {
		if g.f.Kind == flow.KindDNS && !whole[g.f.Key] {
			t.Errorf("flow %s not in the whole file", g.f.Key)
		}
	}
}

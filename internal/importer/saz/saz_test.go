package saz

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
)

type skipped = importtest.Skip

func readBytes(t testing.TB, data []byte) ([]flow.Flow, []skipped, error) {
	t.Helper()
	var c importtest.Collector
	err := Read(context.Background(), bytes.NewReader(data), int64(len(data)), c.Emit, c.Skip)
	return c.Flows, c.Skips, err
}

// The expectations of ../shared/testdata/external/README.md, section saz/.
func TestHttpbin(t *testing.T) {
	data, err := os.ReadFile("testdata/httpbin-test.saz")
	if err != nil {
		t.Fatal(err)
	}
	flows, skips, err := readBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(skips) != 0 {
		t.Errorf("skipped %v", skips)
	}
	var got []string
	for _, f := range flows {
		got = append(got, fmt.Sprintf("%s %s %d %s", f.Method, f.URL, f.Status, f.Start.Format("2006-01-02T15:04:05.9999999Z07:00")))
	}
	want := []string{
		"GET https://httpbin.org/get 200 2025-08-30T11:33:40.0256586-07:00",
		"GET https://httpbin.org/stream/5 200 2025-08-30T11:34:28.6859373-07:00",
		"GET https://httpbin.org/brotli 200 2025-08-30T11:34:46.7421843-07:00",
		"GET https://httpbin.org/deflate 200 2025-08-30T11:34:50.9680557-07:00",
		"GET https://httpbin.org/gzip 200 2025-08-30T11:34:57.9995038-07:00",
		"POST https://httpbin.org/post 200 2025-08-30T11:35:12.3565078-07:00",
	}
	if !slices.Equal(got, want) {
		t.Errorf("sessions\n got %q\nwant %q", got, want)
	}
	for i, f := range flows {
		if f.Key != fmt.Sprintf("session:%d", i+1) || f.Source != flow.SourceSAZ || f.Kind != flow.KindHTTP ||
			f.Host != "httpbin.org" || f.Port != 443 || f.Scheme != "https" || f.Client != "127.0.0.1" || f.ClientPort == 0 {
			t.Errorf("session %d: %+v", i+1, f)
		}
		if _, off := f.Start.Zone(); off != -7*3600 {
			t.Errorf("session %d: zone offset %d, want -07:00", i+1, off)
		}
		if f.End.Before(f.Start) || f.BytesUp == 0 || f.BytesDown == 0 {
			t.Errorf("session %d: %v..%v, %d/%d bytes", i+1, f.Start, f.End, f.BytesUp, f.BytesDown)
		}
	}
	// Session 1, from raw/1_m.xml and the sizes of raw/1_c.txt and raw/1_s.txt.
	f := flows[0]
	if f.ClientPort != 64971 || f.TLSVersion != "1.2" || f.ALPN != "h2,http/1.1" || f.Note != "server 44.195.242.49, process msedge:12140" ||
		f.BytesUp != 560 || f.BytesDown != 1019 || f.End.Format(time.RFC3339Nano) != "2025-08-30T11:33:41.4264004-07:00" {
		t.Errorf("session 1: %+v", f)
	}
}

// makeSAZ builds an archive from name → content.
func makeSAZ(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[n]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const metaXML = `<?xml version="1.0" encoding="utf-8"?><Session SID="9"><SessionTimers ClientConnected="2025-01-02T10:00:00.5+01:00" ClientBeginRequest="2025-01-02T10:00:01+01:00" ClientDoneResponse="2025-01-02T10:00:31+01:00" /><SessionFlags><SessionFlag N="x-clientip" V="::ffff:192.168.50.7" /><SessionFlag N="x-clientport" V="50123" /><SessionFlag N="https-Client-SNIHostname" V="Login.MicrosoftOnline.com" /><SessionFlag N="x-processinfo" V="svchost:1234" /></SessionFlags></Session>`

func TestSynthetic(t *testing.T) {
	data := makeSAZ(t, map[string]string{
		"[Content_Types].xml": "<Types/>",
		// A CONNECT tunnel, not decrypted, with Fiddler's byte counts.
		"raw/1_c.txt": "CONNECT login.microsoftonline.com:443 HTTP/1.1\r\nHost: login.microsoftonline.com:443\r\n\r\n",
		"raw/1_s.txt": "HTTP/1.1 200 Connection Established\r\nFiddlerGateway: Direct\r\nStartTime: 10:00:01.000\r\nConnection: close\r\nEndTime: 10:00:31.000\r\nClientToServerBytes: 4242\r\nServerToClientBytes: 9001\r\n\r\nThis is a CONNECT tunnel.",
		"raw/1_m.xml": metaXML,
		// Origin-form request, no response, broken metadata timers.
		"raw/2_c.txt": "GET /connecttest.txt HTTP/1.1\r\nHost: www.msftconnecttest.com\r\n\r\n",
		"raw/2_m.xml": strings.Replace(metaXML, "ClientDoneResponse=\"2025-01-02T10:00:31+01:00\"", "ClientDoneResponse=\"0001-01-01T00:00:00\"", 1),
		// No request: skipped.
		"raw/3_s.txt": "HTTP/1.1 200 OK\r\n\r\n",
		"raw/3_m.xml": metaXML,
		// Garbage request line: skipped.
		"raw/10_c.txt": "HELLO\r\n\r\n",
		"raw/10_m.xml": metaXML,
		// Metadata that is not XML: the session has no time, skipped.
		"raw/11_c.txt": "GET http://a.example/ HTTP/1.1\r\n\r\n",
		"raw/11_m.xml": "<Session><SessionTimers",
	})
	flows, skips, err := readBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 2 {
		t.Fatalf("%d flows, want 2: %+v", len(flows), flows)
	}
	c := flows[0]
	if c.Key != "session:1" || c.Kind != flow.KindConnect || c.Host != "login.microsoftonline.com" || c.Port != 443 || c.Status != 200 ||
		c.BytesUp != 4242 || c.BytesDown != 9001 || c.SNI != "login.microsoftonline.com" || c.Client != "192.168.50.7" || c.ClientPort != 50123 ||
		c.Duration() != 30*time.Second || c.Note != "process svchost:1234" {
		t.Errorf("tunnel %+v", c)
	}
	g := flows[1]
	if g.Key != "session:2" || g.URL != "http://www.msftconnecttest.com/connecttest.txt" || g.Host != "www.msftconnecttest.com" || g.Port != 80 ||
		g.Status != 0 || g.Error != "no response recorded" || !g.End.IsZero() {
		t.Errorf("plain %+v", g)
	}
	want := []skipped{
		{Where: "session 3", Reason: "raw/3_c.txt (the request) is missing"},
		{Where: "raw/10_c.txt", Reason: `request line "HELLO" is not METHOD TARGET [VERSION]`},
		{Where: "raw/11_m.xml", Reason: "metadata: XML syntax error on line 1: unexpected EOF"},
		{Where: "session 11", Reason: "no time recorded (metadata missing or without timers)"},
	}
	if !slices.Equal(skips, want) {
		t.Errorf("skips\n got %q\nwant %q", skips, want)
	}
}

// A SAZ cut in half has lost its central directory: the sessions before
// the cut are recovered from the members' local headers (Fiddler writes
// zip64 ones), and the error says the file is cut short.
func TestTruncated(t *testing.T) {
	data, err := os.ReadFile("testdata/httpbin-test.saz")
	if err != nil {
		t.Fatal(err)
	}
	full, _, err := readBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	flows, skips, err := readBytes(t, data[:len(data)/2])
	if err == nil || err.Error() != "the zip's central directory is missing (file truncated?): 13 members recovered by scanning" {
		t.Errorf("error %v", err)
	}
	if len(flows) != 3 {
		t.Fatalf("%d sessions recovered, want 3", len(flows))
	}
	for i, f := range flows {
		if !flow.Same(f, full[i]) {
			t.Errorf("recovered session %d\n got %+v\nwant %+v", i+1, f, full[i])
		}
	}
	want := []skipped{{Where: "raw/4_m.xml", Reason: "metadata cut short: unexpected EOF"}, {Where: "session 4", Reason: "no time recorded (metadata missing or without timers)"}}
	if !slices.Equal(skips, want) {
		t.Errorf("skips %q, want %q", skips, want)
	}
}

func TestNotSAZ(t *testing.T) {
	data, _ := os.ReadFile("testdata/httpbin-test.saz")
	tests := []struct {
		name  string
		input []byte
		err   string
	}{
		{"cut in the first member", data[:200], "the zip's central directory is missing (file truncated?): 2 members recovered by scanning"},
		{"other zip", makeSAZ(t, map[string]string{"word/document.xml": "<x/>"}), "a zip, but not a Fiddler archive: no raw/N_c.txt sessions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readBytes(t, tt.input)
			if err == nil || err.Error() != tt.err {
				t.Errorf("error %v, want %q", err, tt.err)
			}
		})
	}
}

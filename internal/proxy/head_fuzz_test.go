package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// FuzzRequestHead feeds arbitrary bytes to the proxy as a client's stream,
// through a real loopback connection: the request line and header parsing,
// target parsing, refusals and PAC answers all run, with every dial
// failing. Whatever the input, the proxy must not panic or hang, must
// record at least one flow (unless nothing was sent), every flow complete and every refusal with a
// reason, and must answer only with HTTP/1.1 responses.
func FuzzRequestHead(f *testing.F) {
	seeds := []string{
		"GET http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/authrootstl.cab HTTP/1.1\r\nHost: ctldl.windowsupdate.com\r\nUser-Agent: Microsoft-CryptoAPI/10.0\r\n\r\n",
		"CONNECT ztd.dds.microsoft.com:443 HTTP/1.1\r\nHost: ztd.dds.microsoft.com:443\r\n\r\n\x16\x03\x01\x00\x04\x01\x00\x00\x00",
		"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
		"POST http://example.test/up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET /proxy.pac HTTP/1.1\r\nHost: 10.0.0.5:8080\r\n\r\nGET /wpad.dat HTTP/1.0\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345",
		"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic bGFiOnMzY3JldA==\r\n\r\n",
		"GET https://x/ HTTP/1.1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://x:99999/ HTTP/1.1\r\n\r\n",
		"CONNECT x HTTP/1.1\r\n\r\n",
		"GET http://x/ HTTP/1.1\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n",
		"\r\n\r\nGET http://x/ HTTP/1.1\n\n",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	var mu sync.Mutex
	var flows []flow.Flow
	p := &Proxy{
		Resolve: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("198.18.0.1")}, nil
		},
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no network while fuzzing")
		},
		Record:         func(fl flow.Flow) { mu.Lock(); flows = append(flows, fl); mu.Unlock() },
		AuthUser:       "lab",
		AuthPass:       "s3cret",
		MaxHeaderBytes: 4096,
		HeaderTimeout:  2 * time.Second,
		IdleTimeout:    2 * time.Second,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go p.Serve(ln)
	f.Cleanup(func() { _ = p.Shutdown(context.Background()) })

	f.Fuzz(func(t *testing.T, in []byte) {
		mu.Lock()
		flows = flows[:0]
		mu.Unlock()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			_, _ = c.Write(in)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("proxy did not close the connection: %v", err)
		}
		// The connection is closed once its last flow is recorded, but the
		// proxy's goroutine may not have returned yet.
		for i := 0; i < 100 && p.Stats().OpenConns > 0; i++ {
			time.Sleep(time.Millisecond)
		}
		if len(out) > 0 && !strings.HasPrefix(string(out), "HTTP/1.1 ") {
			t.Fatalf("answer does not start with a status line: %q", out)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(flows) == 0 && len(in) > 0 {
			t.Fatalf("no flow recorded; answer %q", out)
		}
		for _, fl := range flows {
			if fl.Key == "" || fl.Start.IsZero() || fl.Client != "127.0.0.1" || fl.Source != flow.SourceProxy {
				t.Fatalf("incomplete flow %+v", fl)
			}
			if fl.Decision == flow.DecisionDenied && fl.Reason == "" {
				t.Fatalf("refusal without a reason: %+v", fl)
			}
			if fl.BytesUp < 0 || fl.BytesDown < 0 || fl.BytesUp > int64(len(in)) || fl.BytesDown > int64(len(out)) {
				t.Fatalf("byte counts %d up, %d down for %d in, %d out: %+v", fl.BytesUp, fl.BytesDown, len(in), len(out), fl)
			}
		}
	})
}

package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
)

func TestInternet(t *testing.T) {
	in, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Host+" "+r.Proto) })
	plain, err := in.AddHTTP("ctldl.windowsupdate.com", 80, h)
	if err != nil {
		t.Fatal(err)
	}
	secure, err := in.AddHTTPS("ZTD.dds.microsoft.com", 443, h)
	if err != nil {
		t.Fatal(err)
	}
	if !plain.Addr().Is4() || plain.Addr().IsPrivate() || plain.Addr().IsLoopback() || plain.Addr() == secure.Addr() {
		t.Errorf("addresses %v %v: want distinct public-looking ones", plain, secure)
	}
	in.Point("rebind.example.net", netip.MustParseAddr("127.0.0.1"))

	cases := []struct {
		host string
		want []netip.Addr
		err  error
	}{
		{"ctldl.windowsupdate.com", []netip.Addr{plain.Addr()}, nil},
		{"ztd.dds.microsoft.com.", []netip.Addr{secure.Addr()}, nil},
		{"rebind.example.net", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil},
		{"192.0.2.1", []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil},
		{"unknown.example", nil, ErrNoSuchHost},
	}
	for _, tc := range cases {
		got, err := in.Resolve(context.Background(), tc.host)
		if !errors.Is(err, tc.err) || len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0] {
			t.Errorf("Resolve(%q) = %v, %v; want %v, %v", tc.host, got, err, tc.want, tc.err)
		}
	}

	// Real clients reach the servers by name through Dial, and verify the
	// HTTPS certificate against the Internet's CA.
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			as, err := in.Resolve(ctx, host)
			if err != nil {
				return nil, err
			}
			return in.Dial(ctx, network, net.JoinHostPort(as[0].String(), port))
		},
		TLSClientConfig:   &tls.Config{RootCAs: in.CertPool()},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for url, want := range map[string]string{
		"http://ctldl.windowsupdate.com/": "ctldl.windowsupdate.com HTTP/1.1",
		"https://ztd.dds.microsoft.com/":  "ztd.dds.microsoft.com HTTP/2.0",
	} {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("%s: %q, want %q", url, b, want)
		}
	}
	if _, err := in.Dial(context.Background(), "tcp", "198.18.200.1:443"); err == nil {
		t.Error("dial to an unrouted address succeeded")
	}
	if n := in.Dials(); n != 3 {
		t.Errorf("Dials() = %d, want 3", n)
	}
	if len(in.CAPEM()) == 0 {
		t.Error("no CA PEM")
	}
}

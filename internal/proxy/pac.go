package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// PAC returns a proxy auto-config file that sends everything but plain
// host names and loopback through the proxy at hostport. With
// fallbackDirect, a client that cannot reach the proxy goes direct instead
// of failing (and that traffic is not captured).
func PAC(hostport string, fallbackDirect bool) string {
	proxies := "PROXY " + hostport
	if fallbackDirect {
		proxies += "; DIRECT"
	}
	return `// pilotwire: proxy auto-config
function FindProxyForURL(url, host) {
  if (isPlainHostName(host) || host == "localhost" || host == "127.0.0.1" || host == "[::1]") {
    return "DIRECT";
  }
  return "` + proxies + `";
}
`
}

// isPACPath reports whether path is one the PAC file is served at.
func isPACPath(path string) bool { return path == "/proxy.pac" || path == "/wpad.dat" }

// pacAddr is the address a client reached the proxy on: the Host header
// it used, with the connection's local port when the header has none.
func (c *conn) pacAddr(req *http.Request) string {
	host, port := req.Host, ""
	if h, p, err := net.SplitHostPort(req.Host); err == nil {
		host, port = h, p
	}
	if host == "" || strings.ContainsAny(host, "\"\\ ;") {
		host = c.local.Addr().String()
	}
	if port == "" {
		port = strconv.Itoa(int(c.local.Port()))
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

const helpPage = `pilotwire capture proxy

This is a forward proxy; it does not serve pages itself. Set it as the
HTTP and HTTPS proxy of the device (for Windows: Settings > Network &
internet > Proxy, or "netsh winhttp set proxy %[1]s"), or give the device
its auto-config script:

    http://%[1]s/proxy.pac

(also at /wpad.dat, for WPAD through DHCP option 252 or a DNS "wpad" name).
`

// serveLocal answers a request in origin form, meant for the proxy itself.
// Its flow is of Kind flow.KindPAC (set by dispatch), with the path served
// as URL: the proxy's own traffic, not the device's.
func (x *exchange) serveLocal() bool {
	c, req, f := x.c, x.req, &x.f
	addr := c.pacAddr(req)
	f.Note = "answered by the proxy"
	var status int
	var ctype, body string
	switch {
	case (req.Method == http.MethodGet || req.Method == http.MethodHead) && isPACPath(req.URL.Path):
		status, ctype, body = http.StatusOK, "application/x-ns-proxy-autoconfig", PAC(addr, c.p.PACFallbackDirect)
		f.Note = "PAC file served by the proxy"
	case req.URL.Path == "/":
		status, ctype, body = http.StatusOK, "text/plain; charset=utf-8", fmt.Sprintf(helpPage, addr)
	default:
		status, ctype, body = http.StatusNotFound, "text/plain; charset=utf-8", fmt.Sprintf(helpPage, addr)
	}
	keep := !req.Close
	// Read and drop a small body so the connection stays usable.
	if req.Body != nil {
		n, _ := io.CopyN(io.Discard, req.Body, 64<<10)
		if n == 64<<10 {
			keep = false
		}
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetWriteDeadline(time.Time{})
	bw := c.bw
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nCache-Control: no-store\r\n",
		status, http.StatusText(status), ctype, len(body))
	if !keep {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if req.Method != http.MethodHead {
		bw.WriteString(body)
	}
	err := bw.Flush()
	f.Status = status
	if err != nil {
		f.Error = "writing to client: " + err.Error()
		keep = false
	}
	x.finish()
	return keep
}

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/websocket"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// wsEcho is a WebSocket echo server on loopback.
func wsEcho(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) { _, _ = io.Copy(ws, ws) }))
	t.Cleanup(srv.Close)
	return srv
}

// wsThrough opens a WebSocket to the echo server through the proxy at
// proxyAddr: Go's WebSocket client on a connection to the proxy, asking in
// absolute form as clients of a proxy do for ws:// over plain HTTP.
func wsThrough(t *testing.T, proxyAddr string, srv *httptest.Server, header http.Header) (*websocket.Conn, error) {
	t.Helper()
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg, err := websocket.NewConfig("ws://"+host+"/echo", "http://"+host)
	if err != nil {
		t.Fatal(err)
	}
	// RequestURI of an opaque "//host/path" with scheme http is
	// "http://host/path": the request line a proxy expects.
	cfg.Location = &url.URL{Scheme: "http", Host: host, Opaque: "//" + host + "/echo"}
	cfg.Header = header
	nc, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.NewClient(cfg, nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return ws, nil
}

// echoMessages sends n messages and checks each comes back; it returns
// the payload bytes sent.
func echoMessages(t *testing.T, ws *websocket.Conn, n int) int {
	t.Helper()
	sent := 0
	for i := range n {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("w", 1000))
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
			t.Fatalf("receive %d: %q, %v", i, got, err)
		}
		sent += len(msg)
	}
	return sent
}

// TestWebSocket: a WebSocket over plain HTTP is relayed both ways until a
// side closes, and recorded as one flow with the bytes of each way.
func TestWebSocket(t *testing.T) {
	srv := wsEcho(t)
	e := newEnv(t, func(p *Proxy) { p.AllowPrivateTargets = true })
	ws, err := wsThrough(t, e.addr, srv, nil)
	if err != nil {
		t.Fatalf("WebSocket through the proxy: %v", err)
	}
	sent := echoMessages(t, ws, 20)
	ws.Close()
	flows := e.flows()
	if len(flows) != 1 {
		t.Fatalf("%d flows: %+v", len(flows), flows)
	}
	f := flows[0]
	if f.Kind != flow.KindHTTP || f.Method != "GET" || f.Status != http.StatusSwitchingProtocols || f.URL != srv.URL+"/echo" ||
		f.Open() || f.Decision != flow.DecisionAllowed || f.Error != "" || (f.Reason != endClient && f.Reason != endServer) {
		t.Errorf("flow: %+v", f)
	}
	// Each way: the payload, its frame headers (and the client's masks),
	// and the handshake's head.
	if f.BytesUp < int64(sent) || f.BytesUp > int64(sent)+20*14+600 || f.BytesDown < int64(sent) || f.BytesDown > int64(sent)+20*10+600 {
		t.Errorf("bytes up %d down %d for %d bytes of messages each way", f.BytesUp, f.BytesDown, sent)
	}
}

// TestWebSocketUpstream: through an upstream proxy the Upgrade goes to the
// upstream (absolute form, with its credentials) on a connection of its
// own, and is relayed there too.
func TestWebSocketUpstream(t *testing.T) {
	srv := wsEcho(t)
	outer := newEnv(t, func(p *Proxy) {
		p.AllowPrivateTargets = true
		p.AuthUser, p.AuthPass = "up", "pw"
	})
	var mu sync.Mutex
	var inner []flow.Flow
	in := startEnv(t, &Proxy{
		Upstream: &url.URL{Scheme: "http", Host: outer.addr, User: url.UserPassword("up", "pw")},
		Record:   func(f flow.Flow) { mu.Lock(); inner = append(inner, f); mu.Unlock() },
	})
	ws, err := wsThrough(t, in.addr, srv, nil)
	if err != nil {
		t.Fatalf("WebSocket through two proxies: %v", err)
	}
	echoMessages(t, ws, 3)
	ws.Close()
	in.stop()
	flows := outer.flows()
	if len(flows) != 1 || flows[0].Status != 101 || flows[0].Device != "up" || flows[0].BytesDown < 3000 {
		t.Errorf("outer flows: %+v", flows)
	}
	mu.Lock()
	defer mu.Unlock()
	if last := inner[len(inner)-1]; last.Status != 101 || last.Open() || last.BytesUp < 3000 {
		t.Errorf("inner flow: %+v", last)
	}
}

// TestUpgradeRefused: a server that does not switch answers as usual, and
// the connection carries the next request.
func TestUpgradeRefused(t *testing.T) {
	e := newEnv(t, nil)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, path := range []string{"/bytes?n=7", "/bytes?n=8"} {
		fmt.Fprintf(c, "GET http://%s%s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", plainHost, path, plainHost)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || len(b) != 7+i {
			t.Errorf("%s: %d, %d bytes", path, resp.StatusCode, len(b))
		}
	}
}

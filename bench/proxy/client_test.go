package main

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"
)

func TestReadHead(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want head
		err  bool
	}{
		{"keep-alive 1.1", "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", head{status: 200, length: 13}, false},
		{"1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", head{status: 200, length: 5, close: true}, false},
		{"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n", head{status: 200, length: 5}, false},
		{"close", "HTTP/1.1 404 Not Found\r\nconnection: Close\r\n\r\n", head{status: 404, length: -1, close: true}, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", head{status: 200, length: -1, chunked: true}, false},
		{"connect", "HTTP/1.1 200 Connection established\r\n\r\n", head{status: 200, length: -1}, false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 1\n\n", head{status: 200, length: 1}, false},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", head{}, true},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", head{}, true},
		{"truncated", "HTTP/1.1 200 OK\r\nContent-Le", head{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readHead(bufio.NewReader(strings.NewReader(tt.in)))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if !tt.err && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzReadHead(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n")
	f.Add("HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		h, err := readHead(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			return
		}
		if h.status < 0 || h.status > 999 {
			t.Errorf("status %d out of range", h.status)
		}
		readBody(bufio.NewReader(strings.NewReader(in)), h, make([]byte, 64))
	})
}

func TestRequestTarget(t *testing.T) {
	tests := []struct {
		line string
		want string
		ok   bool
	}{
		{"GET /small HTTP/1.1\r\n", "/small", true},
		{"GET http://127.0.0.1:8080/big?n=10 HTTP/1.1\r\n", "/big?n=10", true},
		{"GET http://127.0.0.1:8080 HTTP/1.1\r\n", "/", true},
		{"POST /small HTTP/1.1\r\n", "", false},
		{"GET small HTTP/1.1\r\n", "small", false},
		{"GET /small\r\n", "", false},
	}
	for _, tt := range tests {
		got, ok := requestTarget([]byte(tt.line))
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("requestTarget(%q) = %q, %v; want %q, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// TestDirect runs every kind of measurement against the upstreams with no
// proxy in between, and checks the figures are real.
func TestDirect(t *testing.T) {
	u, err := startUpstreams()
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	p := ports{plain: port(u.plain), tls: port(u.tls), echo: port(u.echo)}
	ctx := context.Background()
	r := route{name: "direct"}
	for _, tunnel := range []bool{false, true} {
		mbps, err := download(ctx, r, p, tunnel, 3<<20+7, 10*time.Second) // not a multiple of the block
		if err != nil || mbps <= 0 {
			t.Errorf("download (tls %v) = %v MB/s, %v", tunnel, mbps, err)
		}
	}
	res := load(ctx, r, p, 4, 2*time.Second, 200)
	if res.reqs != 200 || res.errs != 0 || res.dials != 4 || res.p99 < res.p50 || res.p50 <= 0 {
		t.Errorf("load: %+v", res)
	}
	conns, err := openIdle(ctx, r, p, 20, 4)
	if err != nil || len(conns) != 20 {
		t.Errorf("openIdle: %d conns, %v", len(conns), err)
	}
	for _, c := range conns {
		c.Close()
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// smallResponse is what /small answers: about the size of a typical API
// check-in reply's headers, with a short body.
var smallResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\nContent-Length: 13\r\n\r\nhello, world\n")

// bigChunk is the block /big repeats; it is filled once with random bytes
// so nothing on the path can compress or deduplicate it.
const bigChunkSize = 256 << 10

// upstreams are the local servers every measurement talks to, all on
// 127.0.0.1: plain HTTP, the same server behind TLS (the CONNECT target),
// and an echo server that idle tunnels ping once and then leave alone.
type upstreams struct {
	plain, tls, echo net.Listener
	chunk            []byte
}

func startUpstreams() (*upstreams, error) {
	u := &upstreams{chunk: make([]byte, bigChunkSize)}
	if _, err := rand.Read(u.chunk); err != nil {
		return nil, fmt.Errorf("fill stream block: %w", err)
	}
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	ln := func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	if u.plain, err = ln(); err != nil {
		return nil, fmt.Errorf("listen plain: %w", err)
	}
	raw, err := ln()
	if err != nil {
		return nil, fmt.Errorf("listen tls: %w", err)
	}
	u.tls = tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}})
	if u.echo, err = ln(); err != nil {
		return nil, fmt.Errorf("listen echo: %w", err)
	}
	go acceptLoop(u.plain, u.serveHTTP)
	go acceptLoop(u.tls, u.serveHTTP)
	go acceptLoop(u.echo, serveEcho)
	return u, nil
}

func (u *upstreams) close() {
	u.plain.Close()
	u.tls.Close()
	u.echo.Close()
}

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

func acceptLoop(l net.Listener, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off rather than spin.
			fmt.Fprintf(os.Stderr, "upstream accept: %v\n", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go serve(c)
	}
}

// serveHTTP is a deliberately minimal HTTP/1.1 keep-alive server, so the
// upstream costs as little CPU as possible and the proxies get the rest of
// the machine. It understands GET /small and GET /big?n=BYTES, in origin
// or absolute form, and honours "Connection: close".
func (u *upstreams) serveHTTP(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		target, ok := requestTarget(line)
		if !ok {
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			return
		}
		closeAfter := false
		for {
			h, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(bytes.TrimSpace(h)) == 0 {
				break
			}
			if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("connection")) &&
				bytes.Contains(bytes.ToLower(v), []byte("close")) {
				closeAfter = true
			}
		}
		switch {
		case target == "/small":
			if _, err := c.Write(smallResponse); err != nil {
				return
			}
		case strings.HasPrefix(target, "/big?n="):
			n, err := strconv.ParseInt(strings.TrimPrefix(target, "/big?n="), 10, 64)
			if err != nil || n < 0 {
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
				return
			}
			if err := u.writeBig(c, n); err != nil {
				return
			}
		default:
			c.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
		}
		if closeAfter {
			return
		}
	}
}

// writeBig streams n bytes generated on the fly (the same random block
// over and over), never from a file.
func (u *upstreams) writeBig(w io.Writer, n int64) error {
	hdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nCache-Control: no-store\r\nContent-Length: %d\r\n\r\n", n)
	if _, err := io.WriteString(w, hdr); err != nil {
		return err
	}
	for n > 0 {
		b := u.chunk
		if int64(len(b)) > n {
			b = b[:n]
		}
		m, err := w.Write(b)
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// requestTarget returns the path of a GET request line, stripping the
// scheme and authority of an absolute-form target.
func requestTarget(line []byte) (string, bool) {
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != "GET" || !strings.HasPrefix(f[2], "HTTP/1.") {
		return "", false
	}
	t := f[1]
	if rest, ok := strings.CutPrefix(t, "http://"); ok {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return "/", true
		}
		t = rest[i:]
	}
	return t, strings.HasPrefix(t, "/")
}

// serveEcho echoes whatever arrives; idle tunnels send one line through it
// to prove the tunnel works end to end, then stay silent.
func serveEcho(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serveMain runs the upstreams in their own process (so their file
// descriptors and CPU are not the load generator's), prints their ports on
// one line, and exits when stdin closes.
func serveMain(ctx context.Context) error {
	u, err := startUpstreams()
	if err != nil {
		return err
	}
	defer u.close()
	fmt.Printf("plain=%d tls=%d echo=%d\n", port(u.plain), port(u.tls), port(u.echo))
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	select {
	case <-ctx.Done():
	case <-done:
	}
	return nil
}

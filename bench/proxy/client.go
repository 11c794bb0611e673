package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ports are the upstreams' ports on 127.0.0.1.
type ports struct{ plain, tls, echo int }

// route is one way of reaching the upstreams: directly (proxy == ""), or
// through a forward proxy listening at proxy. Every address is loopback.
type route struct {
	name  string
	proxy string
	pid   int // the proxy's process, for /proc figures; 0 when direct
}

func (r route) direct() bool { return r.proxy == "" }

func upstream(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }

// request is the request a client sends for path on the plain upstream:
// origin form directly, absolute form through a proxy.
func (r route) request(p ports, path string) []byte {
	host := upstream(p.plain)
	target := path
	if !r.direct() {
		target = "http://" + host + path
	}
	return []byte("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: pilotwire-bench\r\nAccept: */*\r\n\r\n")
}

func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// dialPlain connects to where plain HTTP requests go on this route.
func (r route) dialPlain(ctx context.Context, p ports) (net.Conn, error) {
	if r.direct() {
		return dial(ctx, upstream(p.plain))
	}
	return dial(ctx, r.proxy)
}

// dialTunnel opens a raw byte stream to 127.0.0.1:dst, through a CONNECT
// tunnel when the route has a proxy.
func (r route) dialTunnel(ctx context.Context, dst int) (net.Conn, error) {
	if r.direct() {
		return dial(ctx, upstream(dst))
	}
	c, err := dial(ctx, r.proxy)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	target := upstream(dst)
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\nUser-Agent: pilotwire-bench\r\n\r\n"); err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s via %s: %w", target, r.name, err)
	}
	br := bufio.NewReaderSize(c, 512)
	h, err := readHead(br)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s via %s: %w", target, r.name, err)
	}
	if h.status != 200 {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s via %s: status %d", target, r.name, h.status)
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s via %s: %d unexpected bytes after the response", target, r.name, br.Buffered())
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// head is what the load generator needs from a response header.
type head struct {
	status  int
	length  int64 // -1 when absent
	chunked bool
	close   bool
}

// readHead parses a response's status line and headers. It is small and
// allocation-light on purpose: the client must not be the bottleneck.
func readHead(br *bufio.Reader) (head, error) {
	h := head{length: -1}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return h, fmt.Errorf("read status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return h, fmt.Errorf("bad status line %q", bytes.TrimSpace(line))
	}
	h.close = line[7] == '0' // HTTP/1.0 closes unless it says keep-alive
	h.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return h, fmt.Errorf("bad status line %q", bytes.TrimSpace(line))
	}
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return h, fmt.Errorf("read header: %w", err)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			return h, nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			h.length, err = strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return h, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			h.chunked = bytes.Contains(bytes.ToLower(v), []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")), bytes.EqualFold(k, []byte("Proxy-Connection")):
			lv := bytes.ToLower(v)
			if bytes.Contains(lv, []byte("close")) {
				h.close = true
			} else if bytes.Contains(lv, []byte("keep-alive")) {
				h.close = false
			}
		}
	}
}

// staleConn reports whether err is what a reused connection that the
// other side had already closed gives.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readBody consumes a response body into buf and returns its length.
func readBody(br *bufio.Reader, h head, buf []byte) (int64, error) {
	switch {
	case h.chunked:
		return io.CopyBuffer(io.Discard, httputil.NewChunkedReader(br), buf)
	case h.length >= 0:
		var n int64
		for n < h.length {
			b := buf
			if rest := h.length - n; rest < int64(len(b)) {
				b = b[:rest]
			}
			m, err := br.Read(b)
			n += int64(m)
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
		}
		return n, nil
	default:
		h.close = true
		return io.CopyBuffer(io.Discard, br, buf)
	}
}

// download fetches size bytes from the plain upstream (tunnel == false)
// or from the TLS upstream through a CONNECT tunnel (tunnel == true), and
// returns the throughput in MB/s (10^6 bytes per second). The clock runs
// from sending the request to the last byte, after the tunnel and the TLS
// handshake are up.
func download(ctx context.Context, r route, p ports, tunnel bool, size int64, timeout time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var c net.Conn
	var err error
	if tunnel {
		raw, err := r.dialTunnel(ctx, p.tls)
		if err != nil {
			return 0, err
		}
		tc := tls.Client(raw, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true}) // loopback bench upstream with a throwaway certificate
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return 0, fmt.Errorf("TLS handshake via %s: %w", r.name, err)
		}
		c = tc
	} else if c, err = r.dialPlain(ctx, p); err != nil {
		return 0, err
	}
	defer c.Close()
	d, _ := ctx.Deadline()
	c.SetDeadline(d)
	req := route{proxy: r.proxy}.request(p, "/big?n="+strconv.FormatInt(size, 10))
	if tunnel {
		req = route{}.request(p, "/big?n="+strconv.FormatInt(size, 10)) // origin form inside the tunnel
	}
	start := time.Now()
	if _, err := c.Write(req); err != nil {
		return 0, fmt.Errorf("send request via %s: %w", r.name, err)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	h, err := readHead(br)
	if err != nil {
		return 0, fmt.Errorf("download via %s: %w", r.name, err)
	}
	if h.status != 200 {
		return 0, fmt.Errorf("download via %s: status %d", r.name, h.status)
	}
	n, err := readBody(br, h, make([]byte, 256<<10))
	el := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("download via %s: after %d of %d bytes: %w", r.name, n, size, err)
	}
	if n != size {
		return 0, fmt.Errorf("download via %s: got %d bytes, want %d", r.name, n, size)
	}
	return float64(n) / 1e6 / el.Seconds(), nil
}

// loadResult is one run of the small-GET load.
type loadResult struct {
	reqs, errs, dials int64
	elapsed           time.Duration
	p50, p99          time.Duration
	firstErr          error
}

func (l loadResult) rps() float64 { return float64(l.reqs) / l.elapsed.Seconds() }

// load runs clients keep-alive clients, each sending GET /small one after
// the other, for dur or until maxReqs requests in all, whichever is first.
// A client whose connection the proxy closes dials again; the dial counts
// in that request's latency.
func load(ctx context.Context, r route, p ports, clients int, dur time.Duration, maxReqs int64) loadResult {
	req := r.request(p, "/small")
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		res      loadResult
		issued   atomic.Int64
		errCount atomic.Int64
	)
	ready := make(chan struct{})
	var start time.Time
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			var dials, errs int64
			var firstErr error
			var c net.Conn
			var br *bufio.Reader
			connect := func() error {
				var err error
				if c, err = r.dialPlain(ctx, p); err != nil {
					return err
				}
				dials++
				c.SetDeadline(time.Now().Add(dur + 10*time.Second))
				br = bufio.NewReaderSize(c, 4096)
				return nil
			}
			fail := func(err error) {
				errs++
				if firstErr == nil {
					firstErr = err
				}
				if c != nil {
					c.Close()
					c = nil
				}
			}
			used := 0
			roundTrip := func() (head, error) {
				if c == nil {
					if err := connect(); err != nil {
						return head{}, err
					}
					used = 0
				}
				if _, err := c.Write(req); err != nil {
					return head{}, err
				}
				h, err := readHead(br)
				if err == nil && h.status != 200 {
					err = fmt.Errorf("status %d", h.status)
				}
				if err == nil {
					if h.length >= 0 && !h.chunked {
						_, err = br.Discard(int(h.length))
					} else {
						_, err = readBody(br, h, make([]byte, 4096))
						h.close = h.close || (!h.chunked && h.length < 0)
					}
				}
				return h, err
			}
			if err := connect(); err != nil { // connect before the clock starts
				fail(err)
			}
			<-ready
			deadline := start.Add(dur)
			for ctx.Err() == nil && issued.Add(1) <= maxReqs && errCount.Load() < 1000 {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				h, err := roundTrip()
				if err != nil && used > 0 && staleConn(err) {
					// The proxy closed a kept-alive connection without
					// saying so (tinyproxy does): retry once on a new one,
					// as browsers do; the time lost counts in the latency.
					if c != nil {
						c.Close()
						c = nil
					}
					h, err = roundTrip()
				}
				if err != nil {
					fail(err)
					errCount.Add(1)
					if c == nil {
						time.Sleep(time.Millisecond)
					}
					continue
				}
				lat = append(lat, time.Since(t0))
				used++
				if h.close {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			all = append(all, lat...)
			res.dials += dials
			res.errs += errs
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	start = time.Now()
	close(ready)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.reqs = int64(len(all))
	if len(all) > 0 {
		slices.Sort(all)
		res.p50 = all[len(all)/2]
		res.p99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return res
}

// openIdle opens n CONNECT tunnels to the echo upstream, pings through
// each once (so the proxy has really relayed bytes both ways) and returns
// them open. It stops at the first failure and returns what it opened.
func openIdle(ctx context.Context, r route, p ports, n, parallel int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	var (
		mu       sync.Mutex
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ping := []byte("ping\n")
			got := make([]byte, len(ping))
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				err := func() error {
					cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
					defer ccancel()
					c, err := r.dialTunnel(cctx, p.echo)
					if err != nil {
						return err
					}
					c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.Write(ping); err != nil {
						c.Close()
						return fmt.Errorf("ping through tunnel: %w", err)
					}
					if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, ping) {
						c.Close()
						return fmt.Errorf("ping through tunnel: %q, %v", got, err)
					}
					c.SetDeadline(time.Time{})
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					return nil
				}()
				if err != nil {
					mu.Lock()
					if firstErr == nil && !errors.Is(err, context.Canceled) {
						firstErr = err
					}
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	return conns, firstErr
}

package scenario

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/pattern"
	"github.com/pilotwire/pilotwire/internal/sim"
)

// The headers by which a device tells the stand-in server (Handler) how to
// answer: bytes of content, status, and how long the answer takes.
const (
	HeaderDown     = "X-Pilotwire-Sim-Down"
	HeaderStatus   = "X-Pilotwire-Sim-Status"
	HeaderDuration = "X-Pilotwire-Sim-Duration-Ms"
)

// Runner plays scenarios through an HTTP proxy as a device does: a
// CONNECT and a TLS handshake (SNI, the server's certificate verified)
// with a request inside for HTTPS steps, an absolute-form request for
// plain HTTP ones.
type Runner struct {
	// Proxy is the proxy's address, host:port.
	Proxy string
	// Direct, when set, replaces the proxy: the device connects to each
	// step's host and port itself, as a device with no proxy setting does
	// (benchmarks compare the two; give the stand-in internet's resolver
	// and dialer). Proxy is then not used. It is called for steps at once.
	Direct func(ctx context.Context, host string, port int) (net.Conn, error)
	// RootCAs verify the servers' certificates (the stand-in internet's
	// CA, sim.Internet.CertPool).
	RootCAs *x509.CertPool
	// Speed divides offsets and durations: 20 plays a 20-minute run in
	// one. Zero means 1.
	Speed float64
	// BytesScale multiplies every step's bytes (0.01 moves 1% of them).
	// Zero means 1.
	BytesScale float64
	// Jitter moves each step's offset by up to this fraction of the gap
	// since the previous one, at random (seeded by Seed), as a real device
	// never repeats its timing exactly. Zero: none.
	Jitter float64
	Seed   uint64
	// LocalAddr is the device's address (on loopback, one of 127.0.0.0/8
	// per device, so the proxy tells the devices apart). Zero: any.
	LocalAddr netip.Addr
	// MaxParallel bounds the device's exchanges in flight. Zero means 64.
	MaxParallel int
	// StepTimeout bounds one exchange. Zero means 30s plus the step's
	// duration.
	StepTimeout time.Duration
	// Limits slow the content of some hosts down ("a slow Office CDN"):
	// a step to a host a limit names takes at least its bytes down over
	// the limit's rate (at speed 1; divided by Speed like every duration).
	Limits []Limit
}

// Limit is a bandwidth limit for the hosts that one of Hosts matches.
type Limit struct {
	Hosts          []pattern.Pattern
	BytesPerSecond float64
}

// Record is what the device did for one step.
type Record struct {
	Step   int // index in Scenario.Steps
	Method string
	Host   string
	Port   int
	Start  time.Time
	End    time.Time
	// Status is the HTTP status the device saw: the proxy's answer to a
	// CONNECT when it refused, else the server's (0: none).
	Status int
	// Up and Down are content bytes sent and received.
	Up, Down int64
	// Outcome is "ok", "refused" (the proxy said 403), "fail" (the proxy
	// could not reach the server, or the connection broke) or the HTTP
	// status the server sent ("404").
	Outcome string
	Err     string
}

// Expected reports whether the step's outcome is what the scenario said.
func (rec *Record) Expected(st *Step) bool {
	switch st.Expect {
	case ExpectOK:
		return rec.Outcome == "ok"
	case ExpectRefused, ExpectFail:
		return rec.Outcome == st.Expect
	}
	return rec.Outcome == st.Expect
}

func (r *Runner) speed() float64 {
	if r.Speed <= 0 {
		return 1
	}
	return r.Speed
}

func (r *Runner) scale(n int64) int64 {
	if r.BytesScale <= 0 {
		return n
	}
	return int64(float64(n) * r.BytesScale)
}

// Offsets are the moments, from the start, the runner plays each step at:
// the scenario's offsets divided by Speed, with Jitter.
func (r *Runner) Offsets(sc *Scenario) []time.Duration {
	rng := rand.New(rand.NewPCG(r.Seed, 0x5ce7a210))
	out := make([]time.Duration, len(sc.Steps))
	var prev time.Duration
	for i, st := range sc.Steps {
		at := st.At
		if r.Jitter > 0 && i > 0 {
			gap := float64(st.At - prev)
			at += time.Duration((rng.Float64()*2 - 1) * r.Jitter * gap)
			at = max(at, prev)
		}
		prev = st.At
		out[i] = time.Duration(float64(at) / r.speed())
	}
	return out
}

// Run plays sc from now and returns a record of every step, in step
// order. It returns early, with the records so far, when ctx ends.
func (r *Runner) Run(ctx context.Context, sc *Scenario) ([]Record, error) {
	recs := make([]Record, len(sc.Steps))
	offsets := r.Offsets(sc)
	par := r.MaxParallel
	if par <= 0 {
		par = 64
	}
	slots := make(chan struct{}, par)
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := range sc.Steps {
		if wait := time.Until(start.Add(offsets[i])); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				wg.Wait()
				return recs[:i], ctx.Err()
			case <-timer.C:
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return recs[:i], ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			recs[i] = r.step(ctx, i, &sc.Steps[i])
		}()
	}
	wg.Wait()
	return recs, ctx.Err()
}

// step plays one step.
func (r *Runner) step(ctx context.Context, i int, st *Step) Record {
	rec := Record{Step: i, Method: st.Method, Host: st.Host, Port: st.Port, Start: time.Now()}
	d := time.Duration(float64(st.Duration) / r.speed())
	for _, l := range r.Limits {
		if l.BytesPerSecond > 0 && slices.ContainsFunc(l.Hosts, func(p pattern.Pattern) bool { return p.Match(st.Host) }) {
			need := time.Duration(float64(st.Down) / l.BytesPerSecond * float64(time.Second))
			d = max(d, time.Duration(float64(need)/r.speed()))
		}
	}
	timeout := r.StepTimeout
	if timeout <= 0 {
		timeout = 30*time.Second + d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := r.exchange(ctx, st, d, &rec)
	rec.End = time.Now()
	if err != nil {
		rec.Err = err.Error()
		if rec.Outcome == "" {
			rec.Outcome = ExpectFail
		}
	}
	return rec
}

func (r *Runner) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{}
	if r.LocalAddr.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: r.LocalAddr.AsSlice()}
	}
	return d.DialContext(ctx, "tcp", r.Proxy)
}

func (r *Runner) exchange(ctx context.Context, st *Step, d time.Duration, rec *Record) error {
	var conn net.Conn
	var err error
	if r.Direct != nil {
		conn, err = r.Direct(ctx, st.Host, st.Port)
		if err != nil {
			return fmt.Errorf("dial %s:%d: %w", st.Host, st.Port, err)
		}
	} else if conn, err = r.dial(ctx); err != nil {
		return fmt.Errorf("dial the proxy: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	br := bufio.NewReader(conn)
	target := net.JoinHostPort(st.Host, strconv.Itoa(st.Port))
	var rw io.ReadWriter = conn
	path := st.Path
	if st.Method == "CONNECT" && r.Direct != nil {
		tc := tls.Client(conn, &tls.Config{ServerName: st.Host, RootCAs: r.RootCAs, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS with %s: %w", st.Host, err)
		}
		rw, br = tc, bufio.NewReader(tc)
	} else if st.Method == "CONNECT" {
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil {
			return fmt.Errorf("CONNECT %s: %w", target, err)
		}
		if resp.StatusCode != http.StatusOK {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			rec.Status, rec.Outcome = resp.StatusCode, proxyOutcome(resp.StatusCode)
			return fmt.Errorf("CONNECT %s: the proxy answered %s", target, resp.Status)
		}
		tc := tls.Client(&bufConn{Conn: conn, r: br}, &tls.Config{ServerName: st.Host, RootCAs: r.RootCAs, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS with %s: %w", st.Host, err)
		}
		rw, br = tc, bufio.NewReader(tc)
	} else {
		path = "http://" + target + st.Path
		if st.Port == 80 {
			path = "http://" + bracketHost(st.Host) + st.Path
		}
	}
	up := r.scale(st.Up)
	req, err := http.NewRequestWithContext(ctx, st.Method, path, io.LimitReader(zeros{}, up))
	if err != nil {
		return err
	}
	if st.Method == "CONNECT" {
		req.Method = http.MethodPost
		if up == 0 {
			req.Method = http.MethodGet
		}
	}
	req.ContentLength = up
	if up == 0 {
		req.Body = nil
	}
	req.Host = st.Host
	req.Header.Set("User-Agent", "pilotwire-sim-device")
	req.Header.Set(HeaderDown, strconv.FormatInt(r.scale(st.Down), 10))
	req.Header.Set(HeaderStatus, strconv.Itoa(st.Status()))
	req.Header.Set(HeaderDuration, strconv.FormatInt(d.Milliseconds(), 10))
	// Plain HTTP goes to the proxy in absolute form; inside a tunnel, or
	// straight to the server, the request is in origin form.
	if st.Method == "CONNECT" || r.Direct != nil {
		err = req.Write(rw)
	} else {
		err = req.WriteProxy(rw)
	}
	if err != nil {
		return fmt.Errorf("send the request: %w", err)
	}
	rec.Up = up
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	rec.Down, rec.Status = n, resp.StatusCode
	if st.Method != "CONNECT" && resp.Header.Get(HeaderFrom) != "sim" {
		// The proxy answered, not the server.
		rec.Outcome = proxyOutcome(resp.StatusCode)
		return fmt.Errorf("%s %s: the proxy answered %s", st.Method, path, resp.Status)
	}
	if err != nil {
		rec.Outcome = ExpectFail
		return fmt.Errorf("read the content: %w", err)
	}
	rec.Outcome = "ok"
	if resp.StatusCode != http.StatusOK {
		rec.Outcome = strconv.Itoa(resp.StatusCode)
	}
	return nil
}

// HeaderFrom marks an answer of the stand-in server (Handler), so a device
// tells it from an answer of the proxy.
const HeaderFrom = "X-Pilotwire-Sim"

// proxyOutcome words the proxy's refusal to forward.
func proxyOutcome(status int) string {
	if status == http.StatusForbidden {
		return ExpectRefused
	}
	return ExpectFail
}

func bracketHost(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// bufConn reads through the bufio.Reader that read the CONNECT answer, in
// case the server's first TLS bytes came with it.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// MaxAnswer bounds what Handler sends for one request: 1 GiB.
const MaxAnswer = 1 << 30

// Handler is the stand-in server's answer to a device: it reads the
// request's content, then sends the bytes, status and pace the device
// asked for (HeaderDown, HeaderStatus, HeaderDuration), spreading the
// bytes over the duration. A request without them gets a short 200.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, io.LimitReader(req.Body, MaxAnswer))
		down, _ := strconv.ParseInt(req.Header.Get(HeaderDown), 10, 64)
		status, _ := strconv.Atoi(req.Header.Get(HeaderStatus))
		ms, _ := strconv.ParseInt(req.Header.Get(HeaderDuration), 10, 64)
		down = min(max(down, 0), MaxAnswer)
		if status < 200 || status > 599 {
			status = http.StatusOK
		}
		d := time.Duration(min(max(ms, 0), int64(time.Hour/time.Millisecond))) * time.Millisecond
		w.Header().Set(HeaderFrom, "sim")
		w.Header().Set("Content-Length", strconv.FormatInt(down, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(status)
		if req.Method == http.MethodHead {
			return
		}
		// Pace: chunks of 32 KiB, each when its share of d has passed.
		const chunk = 32 << 10
		buf := make([]byte, min(chunk, down))
		start := time.Now()
		for sent := int64(0); sent < down; {
			n := min(int64(len(buf)), down-sent)
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			sent += n
			if d > 0 {
				due := start.Add(time.Duration(float64(d) * float64(sent) / float64(down)))
				if wait := time.Until(due); wait > 0 {
					select {
					case <-req.Context().Done():
						return
					case <-time.After(wait):
					}
				}
			}
		}
		if d > 0 && down == 0 {
			select {
			case <-req.Context().Done():
			case <-time.After(d):
			}
		}
	})
}

// Stage gives the stand-in internet in a server for every host the
// scenarios reach, answering as Handler does, so each step ends as it
// expects: a host a step expects refused resolves to the cloud metadata
// address (which the proxy always refuses to reach), and one it expects to
// fail gets no
// server and no address. A host that steps expect both to work and to
// fail is staged to work.
func Stage(in *sim.Internet, scs ...*Scenario) error {
	type target struct {
		host string
		port int
		tls  bool
	}
	want := map[target]bool{}
	refused := map[string]bool{}
	for _, sc := range scs {
		for _, st := range sc.Steps {
			switch st.Expect {
			case ExpectRefused:
				refused[st.Host] = true
			case ExpectFail:
			default:
				want[target{st.Host, st.Port, st.Method == "CONNECT"}] = true
			}
		}
	}
	h := Handler()
	served := map[string]bool{}
	for t := range want {
		var err error
		if t.tls {
			_, err = in.AddHTTPS(t.host, uint16(t.port), h)
		} else {
			_, err = in.AddHTTP(t.host, uint16(t.port), h)
		}
		if err != nil {
			return fmt.Errorf("stage %s:%d: %w", t.host, t.port, err)
		}
		served[t.host] = true
	}
	for host := range refused {
		if !served[host] {
			in.Point(host, netip.MustParseAddr("169.254.169.254"))
		}
	}
	return nil
}

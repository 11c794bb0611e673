package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/sim"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

// Names of the stand-in internet the tests use.
const (
	plainHost = "ctldl.windowsupdate.com"
	ztdHost   = "ztd.dds.microsoft.com"
	fefHost   = "fef.msua01.manage.microsoft.com"
)

// content serves the test endpoints:
//
//	/bytes?n=N       N bytes with a Content-Length; X-Proto says the protocol it was asked in
//	/chunked?n=N     N bytes, chunked, flushed in 1000-byte pieces
//	/echo            the request body's length and a hash, as text
//	/status?code=C   status C, empty body
func content() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Header().Set("X-Test", "yes")
		w.Header().Set("X-Proto", r.Proto)
		if r.Method != http.MethodHead {
			writeN(w, n)
		}
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		fl := w.(http.Flusher)
		for n > 0 {
			k := min(n, 1000)
			writeN(w, k)
			fl.Flush()
			n -= k
		}
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "got %d bytes, te=%v cl=%d expect=%q hop=%q\n", n, r.TransferEncoding, r.ContentLength,
			r.Header.Get("Expect"), r.Header.Get("X-Hop")+r.Header.Get("Proxy-Authorization")+r.Header.Get("Keep-Alive"))
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
	})
	return mux
}

func writeN(w io.Writer, n int) {
	buf := []byte(strings.Repeat("pilotwire-", 100))
	for n > 0 {
		k := min(n, len(buf))
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
}

// env is a proxy on loopback in front of a stand-in internet, recording
// into a real SQLite store.
type env struct {
	t     testing.TB
	net   *sim.Internet
	p     *Proxy
	addr  string // the proxy's address
	url   *url.URL
	store *sqlite.DB
	db    string // the store's file
	rec   *flow.Recorder
	done  chan struct{}
	once  sync.Once
}

// newEnv starts the stand-in internet and a proxy; configure adjusts the
// proxy before it starts.
func newEnv(t *testing.T, configure func(*Proxy)) *env {
	t.Helper()
	in, err := sim.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	for _, add := range []struct {
		name string
		port uint16
		tls  bool
	}{{plainHost, 80, false}, {ztdHost, 443, true}, {fefHost, 443, true}, {fefHost, 80, false}} {
		var err error
		if add.tls {
			_, err = in.AddHTTPS(add.name, add.port, content())
		} else {
			_, err = in.AddHTTP(add.name, add.port, content())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	db := filepath.Join(t.TempDir(), "flows.db")
	st, err := sqlite.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: 50 * time.Millisecond})
	// The proxy trusts the stand-in internet's CA, as a real one trusts
	// the system's roots.
	p := &Proxy{Resolve: in.Resolve, Dial: in.Dial, Record: rec.Record, TLSConfig: tlsConfig(in)}
	if configure != nil {
		configure(p)
	}
	e := startEnv(t, p)
	e.net, e.store, e.db, e.rec = in, st, db, rec
	return e
}

// startEnv serves p on a loopback port until the test ends.
func startEnv(t testing.TB, p *Proxy) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, p: p, addr: ln.Addr().String(), done: make(chan struct{})}
	e.url = &url.URL{Scheme: "http", Host: e.addr}
	go func() {
		defer close(e.done)
		if err := p.Serve(ln); err != ErrClosed {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(e.stop)
	return e
}

// stop shuts the proxy down (1 s of grace) and flushes the recorder.
func (e *env) stop() {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = e.p.Shutdown(ctx)
		<-e.done
		if e.rec != nil {
			if err := e.rec.Close(); err != nil {
				e.t.Errorf("recorder: %v", err)
			}
		}
	})
}

// flows stops the proxy and returns every stored flow, oldest first.
func (e *env) flows() []flow.Flow {
	e.t.Helper()
	e.stop()
	var out []flow.Flow
	err := e.store.Flows(context.Background(), flow.Filter{}, func(f flow.Flow) error {
		out = append(out, f)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// client is a Go HTTP client through the proxy that trusts the sim CA.
func (e *env) client() *http.Client {
	tr := &http.Transport{
		Proxy:             http.ProxyURL(e.url),
		ForceAttemptHTTP2: true,
	}
	tr.TLSClientConfig = tlsConfig(e.net)
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// rawRequest sends raw bytes to the proxy on a new connection and returns
// its first response, raw, or what it sent until it closed the connection
// or 2 s passed.
func (e *env) rawRequest(data string) string {
	e.t.Helper()
	c := e.send(data)
	defer c.Close()
	var raw strings.Builder
	resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(c, &raw)), nil)
	if err != nil {
		return raw.String()
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return raw.String()
}

func findFlow(t *testing.T, flows []flow.Flow, match func(flow.Flow) bool) flow.Flow {
	t.Helper()
	for _, f := range flows {
		if match(f) {
			return f
		}
	}
	for _, f := range flows {
		t.Logf("flow: %+v", f)
	}
	t.Fatalf("no matching flow among %d", len(flows))
	return flow.Flow{}
}

// send dials the proxy, writes data raw and gives the connection 2 s to
// answer.
func (e *env) send(data string) net.Conn {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := io.WriteString(c, data); err != nil {
		c.Close()
		e.t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	return c
}

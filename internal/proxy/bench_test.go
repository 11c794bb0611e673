package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pilotwire/pilotwire/internal/procstat"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

// blaster serves, on each connection, as many bytes as the client asks for
// in its first line ("N\n"), then closes.
func blaster(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				n, _ := strconv.ParseInt(line[:len(line)-1], 10, 64)
				for n > 0 {
					k := min(n, int64(len(buf)))
					if _, err := c.Write(buf[:k]); err != nil {
						return
					}
					n -= k
				}
			}()
		}
	}()
	b.Cleanup(func() { ln.Close() })
	return ln
}

// BenchmarkTunnelDownload measures a 64 MiB download through a CONNECT
// tunnel, against the same download direct ("direct").
func BenchmarkTunnelDownload(b *testing.B) {
	const size = 64 << 20
	up := blaster(b)
	port := up.Addr().(*net.TCPAddr).Port
	for _, via := range []string{"direct", "proxy"} {
		b.Run(via, func(b *testing.B) {
			e := startEnv(b, &Proxy{AllowPrivateTargets: true, ConnectPorts: []int{port}})
			defer e.stop()
			b.SetBytes(size)
			cpu0 := procstat.Self()
			for b.Loop() {
				var c net.Conn
				var err error
				if via == "direct" {
					c, err = net.Dial("tcp", up.Addr().String())
				} else {
					c, err = net.Dial("tcp", e.addr)
					if err == nil {
						fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
						br := bufio.NewReader(c)
						if _, err = http.ReadResponse(br, nil); err != nil || br.Buffered() > 0 {
							b.Fatal(err)
						}
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				fmt.Fprintf(c, "%d\n", size)
				n, _ := io.Copy(io.Discard, c)
				c.Close()
				if n != size {
					b.Fatalf("%d bytes", n)
				}
			}
			// CPU time of the whole process (sender, receiver and, via
			// "proxy", the relay) per GiB: "proxy" minus "direct" is what
			// the relay costs.
			b.ReportMetric((procstat.Self()-cpu0).Seconds()/(float64(b.N)*size/(1<<30)), "cpu-s/GiB")
		})
	}
}

// BenchmarkPlainGET measures small GETs through the proxy over keep-alive
// connections, 64 at a time, through each of the two plain-HTTP paths
// (path=direct: the direct pool; path=transport: net/http's Transport).
// Run with -count to alternate them.
func BenchmarkPlainGET(b *testing.B) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "13")
		io.WriteString(w, "hello, world\n")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	target := "http://" + ln.Addr().String() + "/"
	for _, path := range []string{"direct", "transport"} {
		for _, rec := range []bool{false, true} {
			b.Run(fmt.Sprintf("path=%s/record=%v", path, rec), func(b *testing.B) {
				benchPlainGET(b, target, rec, path == "transport")
			})
		}
	}
}

func benchPlainGET(b *testing.B, target string, rec, transportOnly bool) {
	p := &Proxy{AllowPrivateTargets: true, transportOnly: transportOnly}
	if rec {
		st, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "flows.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		r := flow.NewRecorder(st, flow.RecorderOptions{})
		defer r.Close()
		p.Record = r.Record
	}
	e := startEnv(b, p)
	defer e.stop()
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: e.addr}), MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.SetParallelism(32)
	cpu0 := procstat.Self()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(target)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	// Wall time per request says little on a busy machine; the
	// process's CPU time (client, proxy and server together)
	// per request says what the proxy's changes cost or save.
	b.ReportMetric(float64((procstat.Self()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

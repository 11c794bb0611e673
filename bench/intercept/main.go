// Command intercept measures TLS interception side by side in one run, on
// loopback: pilotwire proxy --intercept, mitmproxy (mitmdump) and Squid
// with ssl-bump, and a direct connection as the baseline. For each:
//
//   - small GETs: 64 clients, each on its own keep-alive connection
//     through the proxy (which opens each client's TLS with its own CA),
//     for -duration, in -reps rounds where the contenders take turns:
//     requests a second, p99 latency, and CPU time per request of the
//     proxy's process and of this one (the clients and the upstream
//     server, which share the machine with the proxy), medians of the
//     rounds;
//   - one big GET of -size bytes through one intercepted connection a
//     round: MB/s, the median of the rounds;
//   - minting: a TLS handshake through the proxy for a server name it has
//     not seen (a leaf to mint) against one it has (a cached leaf), p50 of
//     each (pilotwire and mitmproxy; Squid's bump mints for the CONNECT
//     host, which is the same here).
//
// Every upstream answer comes from one Go TLS server whose certificate
// (for localhost and *.bench.test) is signed by a CA made for the run;
// each proxy is told to trust it (pilotwire through SSL_CERT_FILE), and
// each client trusts the proxy's own CA. Ratios are printed at the end.
//
//	go run ./bench/intercept                 # the full run, a few minutes
//	go run ./bench/intercept -quick          # about a minute and a half
package main

import (
	"github.com/pilotwire/pilotwire/internal/procstat"

	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	quick := flag.Bool("quick", false, "shorter runs (about a minute and a half in all)")
	duration := flag.Duration("duration", 15*time.Second, "how long the 64 clients send small GETs, per contender")
	size := flag.Int64("size", 1<<30, "bytes of the big GET")
	clients := flag.Int("clients", 64, "clients of the small GETs")
	names := flag.Int("names", 200, "server names for the minting figure")
	reps := flag.Int("reps", 3, "rounds of small GETs and a big GET, the contenders taking turns; the median is reported")
	only := flag.String("only", "", "comma-separated contenders to run (direct,pilotwire,mitmproxy,squid); empty: all found")
	flag.StringVar(&pilotwireArgs, "pilotwire-args", "", `more arguments to "pilotwire proxy", e.g. --record=false`)
	flag.StringVar(&prof.cpu, "cpuprofile", "", "write a CPU profile of pilotwire under the small GETs to this file")
	flag.StringVar(&prof.mem, "memprofile", "", "write pilotwire's allocation profile, taken right after the small GETs, to this file")
	flag.Parse()
	if *quick {
		*duration, *size, *names = 5*time.Second, 256<<20, 50
	}
	if err := run(*duration, *size, *clients, *names, max(*reps, 1), *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench/intercept:", err)
		os.Exit(1)
	}
}

var pilotwireArgs string

// prof says where to write pilotwire's profiles; when either is set,
// pilotwire is built with a pprof listener (bench/proxy/pprof.go.in, added
// with go build -overlay: pilotwire's source is untouched).
var prof struct {
	cpu, mem string
	addr     string // the pprof listener, once started
}

// contender is one way through: a proxy URL (nil: direct) and the CA its
// clients must trust.
type contender struct {
	name  string
	proxy *url.URL
	roots *x509.CertPool
	stop  func()
	mint  bool // the minting figure applies
	pid   int  // the proxy's process, for its CPU time; 0: none
}

type result struct {
	name           string
	reqs, p99      float64 // requests a second, p99 in ms
	errs           int64
	proxyCPU       float64 // the proxy process's CPU time per small GET, µs
	benchCPU       float64 // this process's (clients and upstream) per small GET, µs
	mbps           float64
	mintNew, mintC float64 // handshake p50 in ms, new name / cached
}

func run(duration time.Duration, size int64, clients, names, reps int, only string) error {
	dir, err := os.MkdirTemp("", "pilotwire-bench-intercept")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	up, err := startUpstream(dir)
	if err != nil {
		return err
	}
	defer up.srv.Close()
	want := func(n string) bool { return only == "" || slices.Contains(strings.Split(only, ","), n) }

	var all []*contender
	if want("direct") {
		all = append(all, &contender{name: "direct", roots: up.pool, stop: func() {}})
	}
	starters := []struct {
		name  string
		start func(string, *upstream) (*contender, error)
	}{{"pilotwire", startPilotwire}, {"mitmproxy", startMitmproxy}, {"squid", startSquid}}
	for _, s := range starters {
		if !want(s.name) {
			continue
		}
		c, err := s.start(dir, up)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench/intercept: %s left out: %v\n", s.name, err)
			continue
		}
		defer c.stop()
		all = append(all, c)
	}

	fmt.Printf("TLS interception on loopback, %d clients, small GETs for %s × %d rounds, one GET of %d MiB, minting over %d names\n",
		clients, duration, reps, size>>20, names)
	target := "https://localhost:" + strconv.Itoa(up.port)
	var working []*contender
	for _, c := range all {
		if err := get(client(c, c.roots, true), target+"/small"); err != nil {
			fmt.Fprintf(os.Stderr, "bench/intercept: %s does not work: %v\n", c.name, err)
			continue
		}
		working = append(working, c)
	}
	// The small GETs and the big GET run in rounds, each contender once a
	// round in turn: on a shared 2-CPU VM the machine's own load drifts by
	// tens of per cent within a minute, and one run each, one after the
	// other, turned that drift into a ratio. Each figure is the median of
	// the rounds.
	runs := make([][]smallRun, len(working))
	for round := range reps {
		for i, c := range working {
			profile := c.name == "pilotwire" && round == reps/2
			r := measureSmall(c, target, clients, duration, profile)
			r.mbps = bigGet(c, target, size)
			fmt.Printf("  round %d %-10s %9.0f req/s  p99 %7.1f ms  CPU per request: proxy %s, bench %4.0f µs  %8.0f MB/s\n",
				round+1, c.name, r.reqs, r.p99, cpuText(r.proxyCPU, c.pid != 0), r.benchCPU, r.mbps)
			runs[i] = append(runs[i], r)
		}
	}
	var results []result
	for i, c := range working {
		r := result{name: c.name}
		r.reqs = median(runs[i], func(s smallRun) float64 { return s.reqs })
		r.p99 = median(runs[i], func(s smallRun) float64 { return s.p99 })
		r.proxyCPU = median(runs[i], func(s smallRun) float64 { return s.proxyCPU })
		r.benchCPU = median(runs[i], func(s smallRun) float64 { return s.benchCPU })
		for _, s := range runs[i] {
			r.errs += s.errs
		}
		r.mbps = median(runs[i], func(s smallRun) float64 { return s.mbps })
		if c.mint && c.proxy != nil {
			r.mintNew, r.mintC = minting(c, up.port, names)
		}
		fmt.Printf("  %-10s %9.0f req/s  p99 %7.1f ms  (%d errors)  CPU per request: proxy %s, bench %4.0f µs  %8.0f MB/s",
			r.name, r.reqs, r.p99, r.errs, cpuText(r.proxyCPU, c.pid != 0), r.benchCPU, r.mbps)
		if r.mintNew > 0 {
			fmt.Printf("  handshake p50: new name %.2f ms, cached %.2f ms", r.mintNew, r.mintC)
		}
		fmt.Println()
		results = append(results, r)
	}
	var pw *result
	for i := range results {
		if results[i].name == "pilotwire" {
			pw = &results[i]
		}
	}
	if pw != nil {
		fmt.Printf("(medians of %d rounds)\n", reps)
		for _, r := range results {
			if r.name == "pilotwire" || r.name == "direct" {
				continue
			}
			fmt.Printf("pilotwire / %s: small GETs %.2f×, big GET %.2f×", r.name, pw.reqs/r.reqs, pw.mbps/r.mbps)
			if pw.proxyCPU > 0 && r.proxyCPU > 0 {
				fmt.Printf("; proxy CPU per small GET %.2f× as efficient", r.proxyCPU/pw.proxyCPU)
			}
			fmt.Println()
		}
	}
	return nil
}

// ---------------------------------------------------------------- upstream

type upstream struct {
	srv          *http.Server
	port         int
	pool         *x509.CertPool
	caFile       string
	caCert, caKy []byte // PEM
}

// startUpstream serves /small (13 bytes) and /big?n=N (N bytes made on the
// fly) over TLS (HTTP/2 and HTTP/1.1) with a certificate for localhost and
// *.bench.test from a CA of its own.
func startUpstream(dir string) (*upstream, error) {
	caCert, caKey, caPEM, caKeyPEM, err := newCA("bench upstream CA")
	if err != nil {
		return nil, err
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost", "*.bench.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "upstream-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello, world\n") })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 64<<10)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leafKey}}}}
	go srv.ServeTLS(ln, "", "")
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &upstream{srv: srv, port: ln.Addr().(*net.TCPAddr).Port, pool: pool, caFile: caFile, caCert: caPEM, caKy: caKeyPEM}, nil
}

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	kd, _ := x509.MarshalECPrivateKey(key)
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), nil
}

// ---------------------------------------------------------------- contenders

func freePort() int {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startCmd starts a proxy process and waits until its port answers.
func startCmd(cmd *exec.Cmd, port int) (func(), error) {
	logf, _ := os.CreateTemp("", "bench-intercept-log")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.Remove(logf.Name())
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return stop, nil
		}
	}
	stop()
	log, _ := os.ReadFile(logf.Name())
	return nil, fmt.Errorf("%s did not listen on %d: %s", cmd.Path, port, log)
}

func poolFromFile(path string) (*x509.CertPool, error) {
	var data []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if data, err = os.ReadFile(path); err == nil && len(data) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no CA at %s", path)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("no certificate in %s", path)
	}
	return pool, nil
}

func startPilotwire(dir string, up *upstream) (*contender, error) {
	bin := filepath.Join(dir, "pilotwire")
	build := []string{"build", "-o", bin}
	var env []string
	if prof.cpu != "" || prof.mem != "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		overlay := filepath.Join(dir, "overlay.json")
		o := fmt.Sprintf(`{"Replace":{%q:%q}}`, filepath.Join(wd, "cmd/pilotwire/zz_bench_pprof.go"), filepath.Join(wd, "bench/proxy/pprof.go.in"))
		if err := os.WriteFile(overlay, []byte(o), 0o600); err != nil {
			return nil, err
		}
		build = append(build, "-overlay", overlay)
		prof.addr = "127.0.0.1:" + strconv.Itoa(freePort())
		env = append(env, "PILOTWIRE_BENCH_PPROF="+prof.addr)
	}
	if out, err := exec.Command("go", append(build, "./cmd/pilotwire")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build: %v: %s", err, out)
	}
	caDir := filepath.Join(dir, "pwca")
	if out, err := exec.Command(bin, "ca", "init", "--ca-dir", caDir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ca init: %v: %s", err, out)
	}
	port := freePort()
	cmd := exec.Command(bin, "--store", filepath.Join(dir, "pw.db"), "proxy", "--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--ui", "off", "--intercept", "--ca-dir", caDir, "--allow-private-targets", "--connect-ports", strconv.Itoa(up.port),
		"--max-conns", "10000")
	cmd.Args = append(cmd.Args, strings.Fields(pilotwireArgs)...)
	// Go reads the system roots from SSL_CERT_FILE: the upstream's CA.
	cmd.Env = append(append(os.Environ(), "SSL_CERT_FILE="+up.caFile), env...)
	stop, err := startCmd(cmd, port)
	if err != nil {
		return nil, err
	}
	pool, err := poolFromFile(filepath.Join(caDir, "pilotwire-ca.pem"))
	if err != nil {
		stop()
		return nil, err
	}
	return &contender{name: "pilotwire", proxy: &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)}, roots: pool, stop: stop, mint: true, pid: cmd.Process.Pid}, nil
}

func startMitmproxy(dir string, up *upstream) (*contender, error) {
	bin, err := exec.LookPath("mitmdump")
	if err != nil {
		return nil, errors.New("mitmdump not installed (apt-get install mitmproxy)")
	}
	conf := filepath.Join(dir, "mitm")
	port := freePort()
	cmd := exec.Command(bin, "--listen-host", "127.0.0.1", "--listen-port", strconv.Itoa(port), "-q",
		"--set", "confdir="+conf, "--set", "ssl_verify_upstream_trusted_ca="+up.caFile, "--set", "connection_strategy=lazy",
		"--set", "stream_large_bodies=1m") // stream big bodies, as the others do
	stop, err := startCmd(cmd, port)
	if err != nil {
		return nil, err
	}
	pool, err := poolFromFile(filepath.Join(conf, "mitmproxy-ca-cert.pem"))
	if err != nil {
		stop()
		return nil, err
	}
	return &contender{name: "mitmproxy", proxy: &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)}, roots: pool, stop: stop, mint: true, pid: cmd.Process.Pid}, nil
}

func startSquid(dir string, up *upstream) (*contender, error) {
	bin, err := exec.LookPath("squid")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/squid"); e != nil {
			return nil, errors.New("squid not installed (apt-get install squid-openssl)")
		}
		bin = "/usr/sbin/squid"
	}
	if out, _ := exec.Command(bin, "-v").CombinedOutput(); !strings.Contains(string(out), "--with-openssl") {
		return nil, errors.New("this squid has no ssl-bump (apt-get install squid-openssl)")
	}
	certgen := "/usr/lib/squid/security_file_certgen"
	sq := filepath.Join(dir, "squid")
	os.MkdirAll(sq, 0o777)
	caCert, _, caPEM, caKeyPEM, err := newCA("bench squid bump CA")
	if err != nil {
		return nil, err
	}
	bump := filepath.Join(sq, "bump.pem")
	os.WriteFile(bump, append(append([]byte{}, caPEM...), caKeyPEM...), 0o644)
	db := filepath.Join(sq, "ssldb")
	if out, err := exec.Command(certgen, "-c", "-s", db, "-M", "16MB").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("certgen: %v: %s", err, out)
	}
	port := freePort()
	conf := filepath.Join(sq, "squid.conf")
	cfg := fmt.Sprintf(`http_port 127.0.0.1:%d ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=16MB tls-cert=%s
sslcrtd_program %s -s %s -M 16MB
sslcrtd_children 8 startup=2 idle=1
ssl_bump bump all
tls_outgoing_options cafile=%s
acl localnet src 127.0.0.0/8
acl SSL_ports port %d
acl CONNECT method CONNECT
http_access allow localnet
http_access deny all
cache deny all
access_log stdio:%s/access.log
cache_log %s/cache.log
pid_filename %s/squid.pid
coredump_dir %s
max_filedescriptors 20000
shutdown_lifetime 1 seconds
`, port, bump, certgen, db, up.caFile, up.port, sq, sq, sq, sq)
	os.WriteFile(conf, []byte(cfg), 0o644)
	// Squid drops to "nobody" when started as root: it must read its files.
	exec.Command("chmod", "-R", "a+rwX", sq).Run()
	exec.Command("chmod", "a+rx", dir).Run()
	exec.Command("chmod", "a+r", up.caFile).Run()
	cmd := exec.Command(bin, "-N", "-f", conf) // -N: one process, no fork
	stop, err := startCmd(cmd, port)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(sq, "cache.log"))
		return nil, fmt.Errorf("%v; cache.log: %s", err, log)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &contender{name: "squid", proxy: &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)}, roots: pool, stop: stop, pid: cmd.Process.Pid}, nil
}

// ---------------------------------------------------------------- measurements

// client is an HTTP/1.1 client through c's proxy (or direct), trusting
// roots, with one keep-alive connection.
func client(c *contender, roots *x509.CertPool, keepAlive bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 1, DisableKeepAlives: !keepAlive,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	if c.proxy != nil {
		tr.Proxy = http.ProxyURL(c.proxy)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Minute}
}

func get(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return nil
}

// smallGets runs n clients for d: requests a second, p99 in ms, errors,
// and the number of requests answered.
func smallGets(c *contender, target string, n int, d time.Duration) (float64, float64, int64, int64) {
	var done, errs atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Go(func() {
			cl := client(c, c.roots, true)
			var local []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := get(cl, target+"/small"); err != nil {
					errs.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
				done.Add(1)
			}
			cl.CloseIdleConnections()
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	p99 := 0.0
	if len(lat) > 0 {
		p99 = float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()) / 1000
	}
	return float64(done.Load()) / elapsed.Seconds(), p99, errs.Load(), done.Load()
}

func cpuText(us float64, known bool) string {
	if !known {
		return "   -"
	}
	return fmt.Sprintf("%4.0f µs", us)
}

// fetchProfile writes what pilotwire's pprof listener answers at path to
// file.
func fetchProfile(path, file string) error {
	resp, err := http.Get("http://" + prof.addr + path)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: %s", path, resp.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return fmt.Errorf("pprof %s: %w", path, err)
	}
	return out.Close()
}

// smallRun is one round through one contender: its small GETs and its
// big GET.
type smallRun struct {
	reqs, p99          float64
	errs               int64
	proxyCPU, benchCPU float64 // µs per request
	mbps               float64 // the big GET
}

// measureSmall runs one round of small GETs through c; with profile, it
// takes pilotwire's profiles meanwhile (-cpuprofile, -memprofile).
func measureSmall(c *contender, target string, clients int, d time.Duration, profile bool) smallRun {
	profDone := make(chan error, 1)
	if profile && prof.cpu != "" {
		go func() {
			profDone <- fetchProfile(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), prof.cpu)
		}()
	} else {
		profDone <- nil
	}
	var r smallRun
	pcpu0, bcpu0 := procstat.CPU(c.pid), procstat.Self()
	var n int64
	r.reqs, r.p99, r.errs, n = smallGets(c, target, clients, d)
	if n > 0 {
		if c.pid != 0 {
			r.proxyCPU = float64((procstat.CPU(c.pid) - pcpu0).Microseconds()) / float64(n)
		}
		r.benchCPU = float64((procstat.Self() - bcpu0).Microseconds()) / float64(n)
	}
	if err := <-profDone; err != nil {
		fmt.Fprintf(os.Stderr, "bench/intercept: CPU profile: %v\n", err)
	}
	if profile && prof.mem != "" {
		if err := fetchProfile("/debug/pprof/allocs", prof.mem); err != nil {
			fmt.Fprintf(os.Stderr, "bench/intercept: allocation profile: %v\n", err)
		}
	}
	return r
}

func median(runs []smallRun, f func(smallRun) float64) float64 {
	if len(runs) == 0 {
		return 0
	}
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func bigGet(c *contender, target string, size int64) float64 {
	cl := client(c, c.roots, false)
	t0 := time.Now()
	if err := get(cl, target+"/big?n="+strconv.FormatInt(size, 10)); err != nil {
		fmt.Fprintf(os.Stderr, "bench/intercept: %s: big GET: %v\n", c.name, err)
		return 0
	}
	return float64(size) / time.Since(t0).Seconds() / 1e6
}

// minting times TLS handshakes through the proxy: CONNECT localhost, then
// a ClientHello for hN.bench.test, first for names it has not seen, then
// again for a name it has. p50 of each, in ms.
func minting(c *contender, port, names int) (float64, float64) {
	var fresh, cached []time.Duration
	tag := strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
	for i := range names {
		if d, err := handshake(c, port, fmt.Sprintf("h%d-%s.bench.test", i, tag)); err == nil {
			fresh = append(fresh, d)
		} else if i == 0 {
			fmt.Fprintf(os.Stderr, "bench/intercept: %s: minting: %v\n", c.name, err)
			return 0, 0
		}
	}
	for range names {
		if d, err := handshake(c, port, "h0-"+tag+".bench.test"); err == nil {
			cached = append(cached, d)
		}
	}
	p50 := func(l []time.Duration) float64 {
		if len(l) == 0 {
			return 0
		}
		slices.Sort(l)
		return float64(l[len(l)/2].Microseconds()) / 1000
	}
	return p50(fresh), p50(cached)
}

func handshake(c *contender, port int, name string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.proxy.Host)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	t0 := time.Now()
	fmt.Fprintf(conn, "CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n", port, port)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("CONNECT: %s", resp.Status)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: name, RootCAs: c.roots})
	if err := tc.HandshakeContext(ctx); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	// A request follows, as a real client's does: a client that closes
	// right after the handshake looks like one refusing the certificate.
	fmt.Fprintf(tc, "GET /small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name)
	io.Copy(io.Discard, tc)
	return d, nil
}

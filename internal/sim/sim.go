// Package sim is pilotwire's stand-in internet: local HTTP and HTTPS servers
// registered under real-looking host names (ztd.dds.microsoft.com, …),
// with a resolver and a dialer that lead those names to them. Tests and the
// demo give the proxy Internet.Resolve and Internet.Dial, so nothing ever
// reaches the real internet.
//
// Each name gets an address of its own from 198.18.0.0/15 (the range set
// aside for benchmarks, RFC 2544), which the proxy's target rules treat as
// public; Dial maps that address and port to the loopback server. A name
// can also be pointed at any address (Point), to test what the proxy does
// with names that resolve to loopback or metadata addresses.
//
// HTTPS servers present certificates from the Internet's own CA (CertPool,
// CAPEM), valid for their names, so real clients verify them.
package sim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Internet is a set of local servers under public-looking names. It is safe
// for concurrent use.
type Internet struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	pool   *x509.CertPool

	mu      sync.Mutex
	names   map[string][]netip.Addr
	routes  map[netip.AddrPort]string // public-looking address → loopback listener
	next    netip.Addr
	servers []*http.Server
	dials   atomic.Int64
}

// New makes an empty Internet with a fresh CA.
func New() (*Internet, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sim: ca key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pilotwire sim CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sim: ca cert: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sim: ca cert: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &Internet{
		caCert: cert,
		caKey:  key,
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pool:   pool,
		names:  make(map[string][]netip.Addr),
		routes: make(map[netip.AddrPort]string),
		next:   netip.MustParseAddr("198.18.0.1"),
	}, nil
}

// CertPool holds the CA that signs the HTTPS servers' certificates.
func (in *Internet) CertPool() *x509.CertPool { return in.pool }

// CAPEM is the CA certificate in PEM, for clients like curl (--cacert).
func (in *Internet) CAPEM() []byte { return in.caPEM }

// Dials counts the connections Dial was asked for.
func (in *Internet) Dials() int64 { return in.dials.Load() }

// addrOf returns name's address, giving it a new one if it has none.
func (in *Internet) addrOf(name string) netip.Addr {
	in.mu.Lock()
	defer in.mu.Unlock()
	if as := in.names[name]; len(as) > 0 {
		return as[0]
	}
	a := in.next
	in.next = a.Next()
	in.names[name] = []netip.Addr{a}
	return a
}

// Point makes name resolve to addrs, without a server behind them.
func (in *Internet) Point(name string, addrs ...netip.Addr) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.names[strings.ToLower(name)] = addrs
}

// AddHTTP serves h over plain HTTP as http://name:port/ and returns the
// name's address.
func (in *Internet) AddHTTP(name string, port uint16, h http.Handler) (netip.AddrPort, error) {
	return in.add(name, port, h, false)
}

// AddHTTPS serves h over HTTPS (HTTP/2 and HTTP/1.1) as https://name:port/
// with a certificate for name, and returns the name's address.
func (in *Internet) AddHTTPS(name string, port uint16, h http.Handler) (netip.AddrPort, error) {
	return in.add(name, port, h, true)
}

func (in *Internet) add(name string, port uint16, h http.Handler, useTLS bool) (netip.AddrPort, error) {
	name = strings.ToLower(name)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sim: %s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if useTLS {
		cert, err := in.leaf(name)
		if err != nil {
			ln.Close()
			return netip.AddrPort{}, err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	ap := netip.AddrPortFrom(in.addrOf(name), port)
	in.mu.Lock()
	in.routes[ap] = ln.Addr().String()
	in.servers = append(in.servers, srv)
	in.mu.Unlock()
	return ap, nil
}

// leaf makes a certificate for name signed by the CA.
func (in *Internet) leaf(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sim: key for %s: %w", name, err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, in.caCert, &key.PublicKey, in.caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sim: certificate for %s: %w", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// ErrNoSuchHost is returned by Resolve for names the Internet does not know.
var ErrNoSuchHost = errors.New("sim: no such host")

// Resolve returns the addresses of host, like a DNS lookup.
func (in *Internet) Resolve(_ context.Context, host string) ([]netip.Addr, error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	as, ok := in.names[host]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchHost, host)
	}
	return append([]netip.Addr(nil), as...), nil
}

// Dial connects to addr ("ip:port") as if it were on the internet: to the
// loopback server registered there, or fails like an unreachable host.
// Loopback addresses are dialled for real, so tests can see whether a
// proxy let a connection through to them.
func (in *Internet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	in.dials.Add(1)
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("sim: dial %s: %w", addr, err)
	}
	in.mu.Lock()
	real, ok := in.routes[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
	in.mu.Unlock()
	if !ok {
		if !ap.Addr().IsLoopback() {
			return nil, fmt.Errorf("sim: dial %s: connection refused", addr)
		}
		real = addr
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

// Close stops every server.
func (in *Internet) Close() error {
	in.mu.Lock()
	servers := in.servers
	in.servers = nil
	in.mu.Unlock()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

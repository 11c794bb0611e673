package ca

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Leaf certificates: how long they are valid, and how far back they are
// dated (a device whose clock is behind still accepts them).
const (
	LeafValidity = 7 * 24 * time.Hour
	LeafBackdate = time.Hour
	// leafRenew is how long before its end a cached leaf is minted again.
	leafRenew = 24 * time.Hour
	// DefaultLeaves is the default bound of the leaf cache.
	DefaultLeaves = 4096
)

// Leaves mints leaf certificates signed by a CA and keeps the most
// recently used ones. It is safe for concurrent use; concurrent requests
// for one name mint it once.
type Leaves struct {
	ca  *CA
	max int
	now func() time.Time

	mu      sync.Mutex
	lru     *list.List               // of *leafEntry, most recent first
	byName  map[string]*list.Element // name → its element in lru
	pending map[string]*mintCall     // names being minted now
	minted  int64
}

type leafEntry struct {
	name string
	cert *tls.Certificate
	end  time.Time
}

// mintCall is one minting in progress; the others asking for the same
// name wait for done.
type mintCall struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// NewLeaves returns a leaf cache of ca holding at most max certificates
// (DefaultLeaves if max <= 0).
func NewLeaves(ca *CA, max int) *Leaves {
	if max <= 0 {
		max = DefaultLeaves
	}
	return &Leaves{ca: ca, max: max, now: time.Now, lru: list.New(),
		byName: make(map[string]*list.Element), pending: make(map[string]*mintCall)}
}

// Minted counts the certificates minted so far (cache misses).
func (l *Leaves) Minted() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.minted
}

// Len is how many certificates the cache holds.
func (l *Leaves) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// Get returns a certificate for name, a DNS name or an IP address (case
// and a trailing dot do not matter), with its chain (leaf, then the
// root): from the cache, or minted now.
func (l *Leaves) Get(name string) (*tls.Certificate, error) {
	name, err := normalName(name)
	if err != nil {
		return nil, err
	}
	now := l.now()
	l.mu.Lock()
	if el, ok := l.byName[name]; ok {
		e := el.Value.(*leafEntry)
		if now.Before(e.end.Add(-leafRenew)) {
			l.lru.MoveToFront(el)
			l.mu.Unlock()
			return e.cert, nil
		}
		l.lru.Remove(el)
		delete(l.byName, name)
	}
	if c, ok := l.pending[name]; ok {
		l.mu.Unlock()
		<-c.done
		return c.cert, c.err
	}
	c := &mintCall{done: make(chan struct{})}
	l.pending[name] = c
	l.mu.Unlock()

	c.cert, c.err = l.ca.mint(name, now)

	l.mu.Lock()
	delete(l.pending, name)
	if c.err == nil {
		l.minted++
		l.byName[name] = l.lru.PushFront(&leafEntry{name: name, cert: c.cert, end: c.cert.Leaf.NotAfter})
		for l.lru.Len() > l.max {
			old := l.lru.Remove(l.lru.Back()).(*leafEntry)
			delete(l.byName, old.name)
		}
	}
	l.mu.Unlock()
	close(c.done)
	return c.cert, c.err
}

// normalName checks a server name and returns it in the form certificates
// are cached and issued under: lower case, no trailing dot, an IPv6
// address without brackets or zone.
func normalName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.Trim(name, "[]"), "."))
	if a, err := netip.ParseAddr(n); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("ca: leaf for %q: an address with a zone", name)
		}
		return a.Unmap().String(), nil
	}
	if n == "" || len(n) > 253 {
		return "", fmt.Errorf("ca: leaf for %q: not a host name", name)
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("ca: leaf for %q: not a host name", name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("ca: leaf for %q: not a host name", name)
			}
		}
	}
	return n, nil
}

// mint makes a leaf for name (already normalName'd), valid from now.
func (c *CA) mint(name string, now time.Time) (*tls.Certificate, error) {
	if c.key == nil {
		return nil, errors.New("ca: no key loaded")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: leaf key for %s: %w", name, err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	end := now.Add(LeafValidity)
	if end.After(c.Cert.NotAfter) {
		end = c.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"pilotwire interception"}},
		NotBefore:    now.Add(-LeafBackdate),
		NotAfter:     end,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if a, err := netip.ParseAddr(name); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
	} else {
		tmpl.DNSNames = []string{name}
	}
	if len(name) <= 64 {
		tmpl.Subject.CommonName = name
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("ca: leaf for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: leaf for %s: %w", name, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, c.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// Package ca is pilotwire's lab certificate authority: the root that TLS
// interception (package intercept) signs its leaf certificates with, and
// that a lab device must trust for interception to work.
//
// The root is an ECDSA P-256 key and a self-signed certificate valid for
// ten years, kept as two PEM files in one directory (Dir: the user's
// config directory, or $PILOTWIRE_CA_DIR). The key file is written 0600 in
// a 0700 directory and never leaves it: nothing in this package prints,
// logs or exports the key, and Create refuses to replace an existing CA
// unless asked to.
//
// Leaf certificates are minted on demand for a server name (a DNS name or
// an IP address), short-lived and cached (Leaves).
package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names of the CA in its directory.
const (
	CertFile = "pilotwire-ca.pem"
	KeyFile  = "pilotwire-ca-key.pem"
)

// EnvDir names the environment variable that overrides the CA directory.
const EnvDir = "PILOTWIRE_CA_DIR"

// Validity is how long a new root is valid.
const Validity = 10 * 365 * 24 * time.Hour

// ErrExists is returned by Create when a CA is already in the directory.
var ErrExists = errors.New("a CA already exists")

// ErrNoCA is returned by Load when the directory holds no CA.
var ErrNoCA = errors.New("no CA")

// CA is a loaded root: its certificate and key. The key is unexported and
// has no printed form.
type CA struct {
	Cert *x509.Certificate
	Dir  string // where it was loaded from or created
	key  *ecdsa.PrivateKey
}

// String names the CA by its subject; it never shows the key.
func (c *CA) String() string { return c.Cert.Subject.CommonName }

// DER is the root certificate in DER, the form Windows' certutil takes.
func (c *CA) DER() []byte { return c.Cert.Raw }

// PEM is the root certificate in PEM.
func (c *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// Fingerprint is the SHA-256 of the certificate, in hex, as certutil and
// browsers show it.
func (c *CA) Fingerprint() string {
	sum := sha256.Sum256(c.Cert.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// Dir returns the CA directory when no flag names one: $PILOTWIRE_CA_DIR,
// else "pilotwire" in the user's config directory.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("ca: no config directory (set %s or --ca-dir): %w", EnvDir, err)
	}
	return filepath.Join(base, "pilotwire"), nil
}

// Name is the common name of a root made on host at now: it says whose
// lab it belongs to and when it was made, so that a trust store holding
// several is readable.
func Name(host string, now time.Time) string {
	if host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("pilotwire lab CA %s %s", host, now.UTC().Format("2006-01-02"))
}

// Create makes a new root in dir (created 0700 if missing) named by Name.
// It refuses, with ErrExists, when dir already holds a CA certificate or
// key, unless force is set.
func Create(dir, host string, now time.Time, force bool) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if !force {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return nil, fmt.Errorf("ca: %s: %w (use --force to replace it; devices that trust the old one must then trust the new one)", p, ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("ca: %w", err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: key: %w", err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: Name(host, now), Organization: []string{"pilotwire"}},
		// Back-dated an hour: a device whose clock is a little behind
		// still accepts it.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// It signs leaves only, never another CA.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("ca: certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: key: %w", err)
	}
	// The key first: a certificate without its key is useless, and the
	// next Create (with force) replaces both.
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Dir: dir, key: key}, nil
}

// writeFile writes data to path through a temporary file in the same
// directory, made with perm from the start (the key is never readable by
// others, not even for a moment), then renamed over path.
func writeFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".pilotwire-ca-*")
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("ca: %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("ca: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ca: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ca: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

// Load reads the CA in dir. A missing CA is ErrNoCA; a damaged one, or a
// key that does not belong to the certificate, is an error naming the
// file.
func Load(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ca: %s: %w (run pilotwire ca init)", certPath, ErrNoCA)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ca: %s: %w: the certificate is there but its key is missing (pilotwire ca init --force makes a new CA)", keyPath, ErrNoCA)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", keyPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("ca: %s does not belong to %s", keyPath, certPath)
	}
	return &CA{Cert: cert, Dir: dir, key: key}, nil
}

func parseCert(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, errors.New("the certificate is not a CA")
	}
	return cert, nil
}

// parseKey reads a PEM key without ever putting its bytes in an error.
func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("the private key cannot be parsed")
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("the private key is not ECDSA")
	}
	return ek, nil
}

func randSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("ca: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // never zero
}

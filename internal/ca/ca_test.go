package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func newCA(t *testing.T) *CA {
	t.Helper()
	c, err := Create(t.TempDir(), "labhost", testNow, false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreateLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg", "pilotwire")
	c, err := Create(dir, "labhost", testNow, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Cert.Subject.CommonName, "pilotwire lab CA labhost 2026-03-14"; got != want {
		t.Errorf("name %q, want %q", got, want)
	}
	if !c.Cert.IsCA || !c.Cert.MaxPathLenZero || c.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("not a CA that signs leaves only: IsCA %v MaxPathLenZero %v usage %v", c.Cert.IsCA, c.Cert.MaxPathLenZero, c.Cert.KeyUsage)
	}
	pub, ok := c.Cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", c.Cert.PublicKey)
	}
	if got := c.Cert.NotAfter.Sub(c.Cert.NotBefore); got != Validity+time.Hour {
		t.Errorf("valid for %s, want 10 years and the hour of back-dating", got)
	}
	for name, want := range map[string]os.FileMode{KeyFile: 0o600, CertFile: 0o644, ".": 0o700} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Cert.Equal(c.Cert) || !l.key.Equal(c.key) {
		t.Error("Load returned a different CA")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("directory holds %d files, want the certificate and the key", len(entries))
	}
}

func TestCreateRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	first, err := Create(dir, "labhost", testNow, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(dir, "labhost", testNow, false)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	want := "ca: " + filepath.Join(dir, CertFile) + ": a CA already exists (use --force"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start %q", err, want)
	}
	// The key alone also counts: never overwrite a key without force.
	if err := os.Remove(filepath.Join(dir, CertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, "labhost", testNow, false); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over a lone key: %v, want ErrExists", err)
	}
	second, err := Create(dir, "labhost", testNow.Add(time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	if second.key.Equal(first.key) {
		t.Error("--force kept the old key")
	}
	l, err := Load(dir)
	if err != nil || !l.Cert.Equal(second.Cert) {
		t.Fatalf("Load after force: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, ErrNoCA) {
		t.Errorf("empty dir: %v, want ErrNoCA", err)
	}
	c := newCA(t)
	other := newCA(t)
	// A key of another CA.
	key, _ := os.ReadFile(filepath.Join(other.Dir, KeyFile))
	if err := os.WriteFile(filepath.Join(c.Dir, KeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(c.Dir)
	if want := fmt.Sprintf("ca: %s does not belong to %s", filepath.Join(c.Dir, KeyFile), filepath.Join(c.Dir, CertFile)); err == nil || err.Error() != want {
		t.Errorf("mismatched key: %v, want %q", err, want)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, KeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(c.Dir)
	if want := filepath.Join(c.Dir, KeyFile) + ": the private key cannot be parsed"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("damaged key: %v, want …%q", err, want)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, CertFile), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(c.Dir)
	if want := filepath.Join(c.Dir, CertFile) + ": not a PEM certificate"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("damaged certificate: %v, want …%q", err, want)
	}
}

func TestDirFromEnv(t *testing.T) {
	t.Setenv(EnvDir, "/some/where")
	if d, err := Dir(); err != nil || d != "/some/where" {
		t.Errorf("Dir() = %q, %v", d, err)
	}
	t.Setenv(EnvDir, "")
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	if d, err := Dir(); err != nil || d != "/cfg/pilotwire" {
		t.Errorf("Dir() = %q, %v; want /cfg/pilotwire", d, err)
	}
}

// The key has no printed form: a CA printed with any verb shows its name.
func TestKeyNeverPrinted(t *testing.T) {
	c := newCA(t)
	raw, err := c.key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	d := hex.EncodeToString(raw)
	dec := new(big.Int).SetBytes(raw).String()
	for _, verb := range []string{"%v", "%+v", "%s", "%#v"} {
		s := fmt.Sprintf(verb, c)
		if strings.Contains(strings.ToLower(s), d) || strings.Contains(s, dec) {
			t.Errorf("%s shows the key: %s", verb, s)
		}
	}
	if got := fmt.Sprint(c); got != "pilotwire lab CA labhost 2026-03-14" {
		t.Errorf("printed as %q", got)
	}
}

func verify(t *testing.T, c *CA, name string, cert []byte, at time.Time) error {
	t.Helper()
	leaf, err := x509.ParseCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Cert)
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: at})
	return err
}

func TestLeaf(t *testing.T) {
	c := newCA(t)
	l := NewLeaves(c, 0)
	l.now = func() time.Time { return testNow }
	for _, tc := range []struct{ ask, name string }{
		{"ztd.dds.microsoft.com", "ztd.dds.microsoft.com"},
		{"ZTD.dds.Microsoft.com.", "ztd.dds.microsoft.com"},
		{"198.18.0.7", "198.18.0.7"},
		{"[2001:db8::1]", "2001:db8::1"},
	} {
		cert, err := l.Get(tc.ask)
		if err != nil {
			t.Fatalf("%s: %v", tc.ask, err)
		}
		if err := verify(t, c, tc.name, cert.Certificate[0], testNow); err != nil {
			t.Errorf("%s: leaf does not verify for %s: %v", tc.ask, tc.name, err)
		}
		if err := verify(t, c, "other.example", cert.Certificate[0], testNow); err == nil {
			t.Errorf("%s: leaf verifies for other.example too", tc.ask)
		}
		leaf := cert.Leaf
		if !leaf.NotBefore.Equal(testNow.Add(-LeafBackdate)) || !leaf.NotAfter.Equal(testNow.Add(LeafValidity)) {
			t.Errorf("%s: valid %s to %s", tc.ask, leaf.NotBefore, leaf.NotAfter)
		}
		if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || leaf.IsCA {
			t.Errorf("%s: key %T, IsCA %v", tc.ask, leaf.PublicKey, leaf.IsCA)
		}
		if len(cert.Certificate) != 2 || string(cert.Certificate[1]) != string(c.Cert.Raw) {
			t.Errorf("%s: chain of %d, want leaf and root", tc.ask, len(cert.Certificate))
		}
	}
	if got := l.Minted(); got != 3 {
		t.Errorf("minted %d, want 3 (two spellings of one name share a leaf)", got)
	}
	for _, bad := range []string{"", "a..b", "bad name", "x/y", strings.Repeat("a", 64) + ".com", "fe80::1%eth0", "héllo.example"} {
		if _, err := l.Get(bad); err == nil {
			t.Errorf("Get(%q) minted a leaf", bad)
		}
	}
}

func TestLeafCache(t *testing.T) {
	c := newCA(t)
	l := NewLeaves(c, 2)
	now := testNow
	l.now = func() time.Time { return now }
	a1, _ := l.Get("a.example")
	if a2, _ := l.Get("a.example"); a2 != a1 {
		t.Error("second Get minted again")
	}
	l.Get("b.example")
	l.Get("a.example") // a is the most recent now
	l.Get("c.example") // evicts b
	if l.Len() != 2 || l.Minted() != 3 {
		t.Fatalf("len %d minted %d, want 2 and 3", l.Len(), l.Minted())
	}
	if a3, _ := l.Get("a.example"); a3 != a1 {
		t.Error("the most recently used leaf was evicted")
	}
	l.Get("b.example")
	if l.Minted() != 4 {
		t.Errorf("minted %d, want 4 (b minted again after eviction)", l.Minted())
	}
	// Close to its end a leaf is minted again, still valid for a week.
	now = testNow.Add(LeafValidity - leafRenew + time.Minute)
	a4, _ := l.Get("a.example")
	if a4 == a1 || !a4.Leaf.NotAfter.Equal(now.Add(LeafValidity)) {
		t.Errorf("leaf near its end not renewed (ends %s)", a4.Leaf.NotAfter)
	}
}

// A leaf never outlives its root.
func TestLeafEndsWithRoot(t *testing.T) {
	c := newCA(t)
	l := NewLeaves(c, 0)
	l.now = func() time.Time { return c.Cert.NotAfter.Add(-time.Hour) }
	cert, err := l.Get("late.example")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.Equal(c.Cert.NotAfter) {
		t.Errorf("leaf ends %s, root %s", cert.Leaf.NotAfter, c.Cert.NotAfter)
	}
}

func TestLeafSingleFlight(t *testing.T) {
	c := newCA(t)
	l := NewLeaves(c, 0)
	var wg sync.WaitGroup
	certs := make([][]byte, 64)
	for i := range certs {
		wg.Go(func() {
			cert, err := l.Get(fmt.Sprintf("host%d.example", i%4))
			if err != nil {
				t.Error(err)
				return
			}
			certs[i] = cert.Certificate[0]
		})
	}
	wg.Wait()
	if got := l.Minted(); got != 4 {
		t.Errorf("64 concurrent Gets of 4 names minted %d, want 4", got)
	}
	for i := 4; i < len(certs); i++ {
		if string(certs[i]) != string(certs[i%4]) {
			t.Errorf("Get %d got another certificate than Get %d", i, i%4)
		}
	}
}

func FuzzLeafName(f *testing.F) {
	for _, s := range []string{"ztd.dds.microsoft.com", "1.2.3.4", "[::1]", "a..b", "x.", "*.example", "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, err := normalName(name)
		if err != nil {
			return
		}
		if again, err := normalName(n); err != nil || again != n {
			t.Fatalf("normalName(%q) = %q, then %q, %v", name, n, again, err)
		}
	})
}

func TestSerialsDiffer(t *testing.T) {
	a, _ := randSerial()
	b, _ := randSerial()
	if a.Cmp(b) == 0 || a.Cmp(big.NewInt(0)) <= 0 {
		t.Errorf("serials %v and %v", a, b)
	}
}

package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/testutil"
)

// goHello returns the bytes Go's TLS client sends first for cfg.
func goHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		_ = tls.Client(client, cfg).Handshake()
	}()
	var buf bytes.Buffer
	_ = server.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 4096)
	for {
		n, err := server.Read(b)
		buf.Write(b[:n])
		if _, perr := ParseClientHello(buf.Bytes()); !errors.Is(perr, ErrNeedMore) || err != nil {
			break
		}
	}
	server.Close()
	client.Close()
	return buf.Bytes()
}

// reframe splits the hello in one record into records of at most size
// bytes of handshake data, as some clients send it.
func reframe(rec []byte, size int) []byte {
	body := rec[5:]
	var out []byte
	for len(body) > 0 {
		n := min(size, len(body))
		out = append(out, 22, rec[1], rec[2], byte(n>>8), byte(n))
		out = append(out, body[:n]...)
		body = body[n:]
	}
	return out
}

func readHello(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "clienthello", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseClientHello(t *testing.T) {
	goTLS12 := goHello(t, &tls.Config{ServerName: "login.microsoftonline.com", MaxVersion: tls.VersionTLS12})
	goTLS13 := goHello(t, &tls.Config{ServerName: "EnterpriseRegistration.Windows.net", NextProtos: []string{"h2", "http/1.1"}})
	noSNI := goHello(t, &tls.Config{InsecureSkipVerify: true})
	ech := readHello(t, "zeek-tls13-ech.bin")
	draft := readHello(t, "zeek-chrome67-tls13draft23.bin")
	cases := []struct {
		name    string
		in      []byte
		sni     string
		alpn    string
		version string
		err     error
	}{
		{"go tls1.2", goTLS12, "login.microsoftonline.com", "", "1.2", nil},
		{"go tls1.3 alpn", goTLS13, "enterpriseregistration.windows.net", "h2,http/1.1", "1.3", nil},
		{"go no sni", noSNI, "", "", "1.3", nil},
		{"zeek ech", ech, "cloudflare-ech.com", "h2,http/1.1", "1.3", nil},
		{"zeek chrome67 draft23 with GREASE", draft, "tls13.crypto.mozilla.org", "h2,http/1.1", "1.3-draft23", nil},
		{"ech in 64-byte records", reframe(ech, 64), "cloudflare-ech.com", "h2,http/1.1", "1.3", nil},
		{"go in 1-byte records", reframe(goTLS13, 1), "enterpriseregistration.windows.net", "h2,http/1.1", "1.3", nil},
		{"hello then more data", append(append([]byte{}, goTLS12...), 23, 3, 3, 0, 1, 0), "login.microsoftonline.com", "", "1.2", nil},
		{"empty", nil, "", "", "", ErrNeedMore},
		{"http", []byte("GET / HTTP/1.1\r\n"), "", "", "", ErrNotTLS},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n"), "", "", "", ErrNotTLS},
		{"one byte", []byte{22}, "", "", "", ErrNeedMore},
		{"half", ech[:300], "", "", "", ErrNeedMore},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseClientHello(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if h.SNI != tc.sni || h.ALPNList() != tc.alpn || VersionName(h.Version) != tc.version {
				t.Errorf("got SNI %q ALPN %q version %q, want %q %q %q", h.SNI, h.ALPNList(), VersionName(h.Version), tc.sni, tc.alpn, tc.version)
			}
		})
	}
	// Every proper prefix of a hello needs more, never fails.
	for _, in := range [][]byte{goTLS13, reframe(ech, 100)} {
		for i := 1; i < len(in); i++ {
			if _, err := ParseClientHello(in[:i]); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("prefix %d of %d: %v", i, len(in), err)
			}
		}
	}
}

func TestParseClientHelloMalformed(t *testing.T) {
	good := readHello(t, "zeek-tls13-ech.bin")
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"not a hello", mut(func(b []byte) []byte { b[5] = 2; return b }), "first handshake message has type 2"},
		{"huge hello", mut(func(b []byte) []byte { b[6], b[7] = 0xff, 0xff; return b }), "over the 32768 byte limit"},
		{"record length zero", []byte{22, 3, 1, 0, 0}, "record at offset 0 has length 0"},
		{"alert inside", append(good[:100:100], 21, 3, 3, 0, 2, 1, 0), "record at offset 100 has type 21"},
		{"short session id", mut(func(b []byte) []byte { b[5+4+2+32] = 0xff; return b }), "truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if tc.name == "alert inside" {
				// The first record claims the whole hello but holds 95 bytes.
				in = append(reframe(good, 95)[:100:100], 21, 3, 3, 0, 2, 1, 0)
			}
			_, err := ParseClientHello(in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestParseClientHelloCaptures reads the 64 TCP ClientHellos of the JA4
// project's tls-sni capture with tshark (that capture may not be copied
// into this repository) and checks each against tshark's own reading.
func TestParseClientHelloCaptures(t *testing.T) {
	tshark := testutil.LookPath(t, "tshark")
	file := filepath.Join(sharedExternal(t), "pcap", "ja4_tls-sni.pcapng")
	out, err := exec.Command(tshark, "-r", file, "-Y", "tls.handshake.type==1 and tcp", "-T", "fields",
		"-E", "separator=|", "-e", "tcp.payload", "-e", "tls.handshake.extensions_server_name",
		"-e", "tls.handshake.extensions_alpn_str").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 64 {
		t.Fatalf("%d hellos, want 64", len(lines))
	}
	for i, line := range lines {
		parts := strings.Split(line, "|")
		raw, err := hex.DecodeString(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		// Five are second hellos, after a HelloRetryRequest, behind a
		// ChangeCipherSpec record; a tunnel never starts with those.
		raw = bytes.TrimPrefix(raw, []byte{20, 3, 3, 0, 1, 1})
		h, err := ParseClientHello(raw)
		if err != nil {
			t.Errorf("hello %d: %v", i, err)
			continue
		}
		if h.SNI != parts[1] || h.ALPNList() != parts[2] || h.Version != 0x0304 {
			t.Errorf("hello %d: got %q %q %s, tshark says %q %q and TLS 1.3", i, h.SNI, h.ALPNList(), VersionName(h.Version), parts[1], parts[2])
		}
	}
}

// sharedExternal finds ../shared/testdata/external beside the repository
// root, or skips.
func sharedExternal(t *testing.T) string {
	t.Helper()
	ext, ok := testutil.SharedPath(t, "testdata", "external")
	if !ok {
		testutil.Missing(t, "shared test captures not found at "+ext+" (they are not part of the repository)")
	}
	return ext
}

func FuzzParseClientHello(f *testing.F) {
	for _, name := range []string{"zeek-tls13-ech.bin", "zeek-chrome67-tls13draft23.bin"} {
		b := readHello(f, name)
		f.Add(b)
		f.Add(reframe(b, 50))
	}
	f.Add(goHello(f, &tls.Config{ServerName: "ztd.dds.microsoft.com", NextProtos: []string{"h2", "http/1.1"}}))
	f.Add(goHello(f, &tls.Config{ServerName: "x", MaxVersion: tls.VersionTLS12}))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte{}, b...)
		h, err := ParseClientHello(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("ParseClientHello changed its input")
		}
		if err != nil {
			return
		}
		// A hello that parsed parses the same way split into records.
		if len(b) > 9 && b[0] == 22 {
			n := int(b[3])<<8 | int(b[4])
			hs := int(b[6])<<16 | int(b[7])<<8 | int(b[8])
			if len(b) >= 5+n && 4+hs <= n {
				h2, err := ParseClientHello(reframe(b[:5+n], 7))
				if err != nil || h2.SNI != h.SNI || h2.ALPNList() != h.ALPNList() || h2.Version != h.Version {
					t.Fatalf("reframed: %+v %v, whole: %+v", h2, err, h)
				}
			}
		}
		_ = VersionName(h.Version)
		if strings.ContainsAny(h.SNI+h.ALPNList(), "\x00\r\n") {
			t.Fatalf("unprintable name survived: %q %q", h.SNI, h.ALPNList())
		}
	})
}

package importer

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Hostile imports: files made to exhaust memory or never end
// are refused or cut short with a message that names the file and where,
// and memory stays bounded.
//
// Memory is measured as the peak resident set (getrusage's ru_maxrss) of a
// child process (this test binary re-run with hostileEnv set, see
// TestMain) that imports one file through ReadFile, minus the peak of a
// child that imports a small valid file. The peak RSS sees every byte the
// process touched, whenever it touched it; sampling runtime.ReadMemStats
// from a goroutine could miss a short-lived spike between two samples, and
// in-process the test's own allocations (the generators') would count.

// hostileEnv holds, in the child, the path of the file to import (its
// format detected, as pilotwire import does by default).
const hostileEnv = "PILOTWIRE_TEST_HOSTILE_IMPORT"

// maxGrowth is the memory a hostile file may cost beyond a small valid one
// (the requirement: hostile files fail clearly in at most 35 MB).
const maxGrowth = 35 << 20

func TestMain(m *testing.M) {
	if path := os.Getenv(hostileEnv); path != "" {
		hostileChild(path)
		return
	}
	os.Exit(m.Run())
}

// childResult is what the child reports on stdout, as JSON.
type childResult struct {
	Flows     int
	BytesDown int64  // summed over the flows
	Partial   string // Result.Partial: how much was read, where it stopped
	Err       string
}

// hostileChild imports one file and prints what ReadFile said, then exits.
func hostileChild(path string) {
	var out childResult
	res, err := ReadFile(context.Background(), path, Options{}, func(f flow.Flow) error {
		out.BytesDown += f.BytesDown
		return nil
	})
	out.Flows, out.Partial = res.Flows, res.Partial()
	if err != nil {
		out.Err = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// importInChild imports path in a child process and returns what ReadFile
// said and the child's peak resident set in bytes (-1 where it cannot be
// measured).
func importInChild(t *testing.T, path string) (childResult, int64) {
	t.Helper()
	// The bound only stops a hang from stalling the suite; each import
	// below takes well under a second.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hostileEnv+"="+path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child importing %s: %v\n%s", path, err, stderr.Bytes())
	}
	var res childResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("child importing %s: %v in %q", path, err, stdout.Bytes())
	}
	rss, ok := peakRSS(cmd.ProcessState)
	if !ok {
		return res, -1 // not measurable here: the messages are still checked
	}
	return res, rss
}

// hostile is one hostile file: make writes it at path and returns what
// the import must say about it.
type hostile struct {
	name string
	make func(t *testing.T, path string) childResult
}

func TestHostileImports(t *testing.T) {
	dir := t.TempDir()
	_, base := importInChild(t, "har/testdata/chrome.har")
	t.Logf("baseline: peak RSS %.1f MiB importing chrome.har", float64(base)/(1<<20))

	cases := []hostile{
		{"squid-long-line.log", squidLongLine},
		{"deep.har", deepHAR},
		{"deep-netlog.json", deepNetlog},
		{"bomb.saz", zipBomb},
		{"snaplen.pcap", hugeSnaplen},
		{"truncated.pcapng", truncatedPcapng},
	}
	if ext := externalDir(t); ext != "" {
		cases = append(cases, hostile{"cut-tls-sni.pcapng", func(t *testing.T, path string) childResult {
			return cutPcapng(t, filepath.Join(ext, "pcap/ja4_tls-sni.pcapng"), path)
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			want := tc.make(t, path)
			defer os.Remove(path)
			got, rss := importInChild(t, path)
			want.Err = strings.ReplaceAll(want.Err, "$FILE", path)
			if got != want {
				t.Errorf("import says\n%+v\nwant\n%+v", got, want)
			}
			if base < 0 {
				return
			}
			t.Logf("peak RSS %.1f MiB", float64(rss)/(1<<20))
			if growth := rss - base; growth > maxGrowth {
				t.Errorf("peak RSS %.1f MiB, %.1f MiB more than for a small file (at most %d MiB allowed)",
					float64(rss)/(1<<20), float64(growth)/(1<<20), maxGrowth>>20)
			}
		})
	}
}

// size is the size of the file at path, as Partial writes it.
func size(t *testing.T, path string) string {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return flow.Thousands(st.Size())
}

const squidLine = "1157689312.049   5006 10.105.21.199 TCP_MISS/200 19763 CONNECT login.yahoo.com:443 badeyek DIRECT/175.16.199.115 -\n"

// squidLongLine writes a Squid log whose second line is 200 MB long (a URL
// of 'a's) between two good lines, in 1 MiB pieces. The reader drops a
// line over 1 MiB without holding it, and gives up after 64 MiB with no
// readable line, naming the offset.
func squidLongLine(t *testing.T, path string) childResult {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := func(s []byte) {
		if _, err := f.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	w([]byte(squidLine))
	w([]byte("1157689313.000      1 10.0.0.1 TCP_MISS/200 10 GET http://a.example/"))
	piece := bytes.Repeat([]byte("a"), 1<<20)
	for range 200 {
		w(piece)
	}
	w([]byte(" - DIRECT/1.2.3.4 text/html\n"))
	w([]byte(squidLine))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return childResult{Flows: 1, BytesDown: 19763, Partial: fmt.Sprintf(
		"read 1 flow of a %s-byte file, then stopped early: offset %d: no readable record in 64 MiB (since line 2, offset %d): giving up; is the rest a Squid access.log?",
		size(t, path), len(squidLine)+64<<20, len(squidLine))}
}

const harEntry = `{"startedDateTime":"2024-01-01T00:00:00.000Z","time":1,"request":{"method":"GET","url":"http://a.example/","httpVersion":"HTTP/1.1","headers":[],"queryString":[],"cookies":[],"headersSize":-1,"bodySize":0},"response":{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","headers":[],"cookies":[],"content":{"size":7,"mimeType":"text/plain"},"redirectURL":"","headersSize":-1,"bodySize":7},"cache":{},"timings":{"send":0,"wait":1,"receive":0}}`

// depth is how deep the hostile JSON nests.
const depth = 100_000

// deepHAR writes a HAR whose second entry nests objects 100,000 deep: the
// entries before it are imported, and the read stops at it. (The offset
// named is where reading the entry began: the comma before it.)
func deepHAR(t *testing.T, path string) childResult {
	head := `{"log":{"version":"1.2","creator":{"name":"x","version":"1"},"entries":[` + harEntry + `,`
	writeFile(t, path, head+`{"request":`+strings.Repeat(`{"a":`, depth)+"1"+strings.Repeat("}", depth)+"},"+harEntry+"]}}")
	return childResult{Flows: 1, BytesDown: 7, Partial: fmt.Sprintf(
		"read 1 flow of a %s-byte file, then stopped early: entry 2 at offset %#x: invalid character '{' exceeded max depth",
		size(t, path), len(head)-1)}
}

const netlogConstants = `{"constants":{"logEventTypes":{"URL_REQUEST_START_JOB":1,"REQUEST_ALIVE":2,"HTTP_TRANSACTION_READ_RESPONSE_HEADERS":3,"URL_REQUEST_JOB_BYTES_READ":4},"timeTickOffset":"1700000000000","netError":{"ERR_CONNECTION_RESET":-101}},"events":[`

// deepNetlog writes a net-log whose second event nests arrays 100,000
// deep: the request begun before it is imported, and the read stops at it
// (the offset named is the comma before it, as for the HAR).
func deepNetlog(t *testing.T, path string) childResult {
	head := netlogConstants + `{"type":1,"phase":1,"time":"11","source":{"id":5,"type":1},"params":{"method":"GET","url":"https://a.example/"}},`
	writeFile(t, path, head+`{"type":1,"phase":1,"time":"12","source":{"id":6,"type":1},"params":`+
		strings.Repeat("[", depth)+strings.Repeat("]", depth)+"}]}")
	return childResult{Flows: 1, Partial: fmt.Sprintf(
		"read 1 flow of a %s-byte file, then stopped early: event 2 at offset %#x: invalid character '[' exceeded max depth",
		size(t, path), len(head)-1)}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// bombSize is the size of the zip bomb's response body: 4 GiB.
const bombSize = 4 << 30

// zipBomb writes a Fiddler archive whose one session's response, 4 MB
// deflated, inflates to a head and 4 GiB of zeros. The session is imported
// with the response's size from the zip's directory, and only its head is
// inflated.
//
// The deflate stream is one compressed MiB of zeros repeated: after a sync
// flush, with a window of zeros behind it, every further MiB of zeros
// compresses to the same bytes.
func zipBomb(t *testing.T, path string) childResult {
	const respHead = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 4294967296\r\n\r\n"
	var z bytes.Buffer
	fw, err := flate.NewWriter(&z, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	segment := func(b []byte) []byte {
		start := z.Len()
		if _, err := fw.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := fw.Flush(); err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(z.Bytes()[start:])
	}
	segment([]byte(respHead))
	segment(zeros) // refers back to the head: not repeatable yet
	seg := segment(zeros)
	if again := segment(zeros); !bytes.Equal(seg, again) {
		t.Fatal("zip bomb: a MiB of zeros does not compress the same way twice")
	}
	const repeats = bombSize>>20 - 3 // z holds the head and 3 MiB
	var final bytes.Buffer           // an empty last block ends the stream
	fw.Reset(&final)
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	crc := crc32.Update(0, crc32.IEEETable, []byte(respHead))
	for range bombSize >> 20 {
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}

	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	add := func(name, body string) {
		w, err := zw.Create(name)
		if err == nil {
			_, err = io.WriteString(w, body)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	add("raw/1_c.txt", "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n")
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name:               "raw/1_s.txt",
		Method:             zip.Deflate,
		CRC32:              crc,
		CompressedSize64:   uint64(z.Len() + repeats*len(seg) + final.Len()),
		UncompressedSize64: uint64(len(respHead)) + bombSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	write(z.Bytes())
	for range repeats {
		write(seg)
	}
	write(final.Bytes())
	add("raw/1_m.xml", `<Session SID="1"><SessionTimers ClientBeginRequest="2024-01-01T00:00:00.0000000+00:00" ClientDoneResponse="2024-01-01T00:00:01.0000000+00:00"/></Session>`)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return childResult{Flows: 1, BytesDown: int64(len(respHead)) + bombSize}
}

// hugeSnaplen writes a real capture whose header says snaplen 4 GB, with a
// packet record claiming 4,000,000,000 captured bytes after its packets.
// Its flow is imported as from the file unchanged, and the read stops at
// the record.
func hugeSnaplen(t *testing.T, path string) childResult {
	const orig = "pcap/testdata/zeek_http_proxy.pcap"
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 {
		t.Fatalf("%s is not a little-endian pcap", orig)
	}
	want := readInProcess(t, orig)
	packets := 0
	for off := 24; off+16 <= len(data); off += 16 + int(binary.LittleEndian.Uint32(data[off+8:])) {
		packets++
	}
	end := len(data)
	data = bytes.Clone(data)
	binary.LittleEndian.PutUint32(data[16:], 0xffffffff) // snaplen
	rec := make([]byte, 16+64)
	binary.LittleEndian.PutUint32(rec[0:], 1700000000)
	binary.LittleEndian.PutUint32(rec[8:], 4_000_000_000)  // captured
	binary.LittleEndian.PutUint32(rec[12:], 4_000_000_000) // on the wire
	writeFile(t, path, string(append(data, rec...)))
	want.Partial = fmt.Sprintf("read %s of a %s-byte file, then stopped early: pcap: packet %d at offset %d (%#x): its record claims 4000000000 bytes, more than the 1048576 pilotwire reads of one packet",
		plural(want.Flows, "flow"), size(t, path), packets+1, end, end)
	return want
}

// readInProcess imports path here and says what the child would.
func readInProcess(t *testing.T, path string) childResult {
	t.Helper()
	var out childResult
	res, err := ReadFile(context.Background(), path, Options{}, func(f flow.Flow) error {
		out.BytesDown += f.BytesDown
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out.Flows = res.Flows
	if out.Flows == 0 {
		t.Fatalf("%s: no flows", path)
	}
	return out
}

// truncatedPcapng writes a pcapng whose first packet block claims 1,000
// captured bytes, of which the file holds 10: the error names the packet
// block's offset, after the section header (28 bytes) and the interface
// description (20).
func truncatedPcapng(t *testing.T, path string) childResult {
	le := binary.LittleEndian
	var b []byte
	block := func(typ uint32, total int, body []byte) {
		b = le.AppendUint32(b, typ)
		b = le.AppendUint32(b, uint32(total))
		b = append(b, body...)
	}
	shb := le.AppendUint32(nil, 0x1a2b3c4d)                // byte-order magic
	shb = le.AppendUint32(shb, 1)                          // version 1.0
	shb = le.AppendUint64(shb, ^uint64(0))                 // section length unknown
	block(0x0a0d0d0a, 28, le.AppendUint32(shb, 28))        // section header
	idb := le.AppendUint32(le.AppendUint32(nil, 1), 65535) // Ethernet, snaplen
	block(1, 20, le.AppendUint32(idb, 20))                 // interface description
	epb := make([]byte, 20+10)                             // interface 0, time 0, ...
	le.PutUint32(epb[12:], 1000)                           // captured
	le.PutUint32(epb[16:], 1000)                           // on the wire
	block(6, 32+1000, epb)                                 // enhanced packet, cut
	writeFile(t, path, string(b))
	return childResult{Err: "import $FILE as pcap: pcap: packet 1 at offset 48 (0x30): file ends inside it: unexpected EOF"}
}

// cutPcapng writes the first half of the real pcapng capture orig to path:
// the flows before the cut are imported, and the read stops naming the
// packet block the file ends in.
func cutPcapng(t *testing.T, orig, path string) childResult {
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	cut := len(data) / 2
	at, packets := 0, 0
	for {
		typ, n := binary.LittleEndian.Uint32(data[at:]), int(binary.LittleEndian.Uint32(data[at+4:]))
		if at+n > cut {
			if typ != 6 {
				t.Fatalf("%s: the middle is in a block of type %d, not a packet", orig, typ)
			}
			break
		}
		if typ == 6 {
			packets++
		}
		at += n
	}
	writeFile(t, path, string(data[:cut]))
	want := readInProcess(t, path)
	want.Partial = fmt.Sprintf("read %s of a %s-byte file, then stopped early: pcap: packet %d at offset %d (%#x): file ends inside it: unexpected EOF",
		plural(want.Flows, "flow"), size(t, path), packets+1, at, at)
	return want
}

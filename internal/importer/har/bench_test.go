package har

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// writeBigHAR writes a HAR of about size bytes to w: entries with headers
// and base64 bodies of a few KiB to 64 KiB, like a DevTools export.
func writeBigHAR(w io.Writer, size int64) (entries int, err error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	body := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("pilotwire-autopilot-", 3300))) // ~88 KiB
	written := int64(0)
	write := func(s string) { n, _ := bw.WriteString(s); written += int64(n) }
	write(`{"log":{"version":"1.2","creator":{"name":"WebInspector","version":"537.36"},"pages":[{"startedDateTime":"2024-05-01T08:00:00.000Z","id":"page_1","title":"x","pageTimings":{}}],"entries":[`)
	t0 := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	for written < size {
		if entries > 0 {
			write(",")
		}
		bodyLen := 4096 + (entries*7919)%(len(body)-4096)
		write(`{"_initiator":{"type":"other"},"_priority":"High","_resourceType":"document","cache":{},"connection":"443","pageref":"page_1",`)
		write(`"request":{"method":"GET","url":"https://login.microsoftonline.com/common/oauth2/token?n=` + strconv.Itoa(entries) + `","httpVersion":"http/2.0","headers":[`)
		for h := 0; h < 12; h++ {
			write(`{"name":"x-header-` + strconv.Itoa(h) + `","value":"some header value that is moderately long for realism"},`)
		}
		write(`{"name":"accept","value":"*/*"}],"queryString":[],"cookies":[],"headersSize":-1,"bodySize":0},`)
		write(`"response":{"status":200,"statusText":"","httpVersion":"http/2.0","headers":[{"name":"content-type","value":"application/json"}],"cookies":[],`)
		write(`"content":{"size":` + strconv.Itoa(bodyLen) + `,"mimeType":"application/json","text":"` + body[:bodyLen] + `","encoding":"base64"},"redirectURL":"","headersSize":-1,"bodySize":-1,"_transferSize":` + strconv.Itoa(bodyLen+300) + `,"_error":null},`)
		write(`"serverIPAddress":"20.190.160.1","startedDateTime":"` + t0.Add(time.Duration(entries)*time.Millisecond).Format(time.RFC3339Nano) + `","time":12.5,"timings":{"blocked":-1,"dns":-1,"ssl":-1,"connect":-1,"send":0.1,"wait":10,"receive":2.4,"_blocked_queueing":-1}}`)
		entries++
	}
	write(`]}}`)
	return entries, bw.Flush()
}

// BenchmarkHARLarge imports a generated HAR (64 MiB by default; set
// PILOTWIRE_HAR_MIB=1024 for the 1 GiB HAR held to bounded memory) and reports the
// peak memory the Go runtime took from the OS while reading it (peak-MiB),
// sampled every millisecond.
func BenchmarkHARLarge(b *testing.B) {
	mib := int64(64)
	if v := os.Getenv("PILOTWIRE_HAR_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		mib = n
	}
	path := filepath.Join(b.TempDir(), "big.har")
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	entries, err := writeBigHAR(fh, mib<<20)
	if err != nil {
		b.Fatal(err)
	}
	fh.Close()
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	runtime.GC()

	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				if v := ms.Sys - ms.HeapReleased; v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	b.ResetTimer()
	for b.Loop() {
		fh, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		err = Read(context.Background(), fh, func(flow.Flow) error { n++; return nil }, func(w string, err error) { b.Fatalf("%s: %v", w, err) })
		fh.Close()
		if err != nil || n != entries {
			b.Fatalf("read %d of %d entries: %v", n, entries, err)
		}
	}
	b.StopTimer()
	close(done)
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-MiB")
	b.ReportMetric(float64(st.Size())/(1<<20), "file-MiB")
}

// TestWriteBigHAR writes the benchmark's HAR to $PILOTWIRE_WRITE_HAR
// ($PILOTWIRE_HAR_MIB MiB, 1024 by default), for measuring the whole
// command (bench/import/run.sh). Skipped unless the variable is set.
func TestWriteBigHAR(t *testing.T) {
	path := os.Getenv("PILOTWIRE_WRITE_HAR")
	if path == "" {
		t.Skip("set PILOTWIRE_WRITE_HAR=FILE to write a big HAR for bench/import/run.sh")
	}
	mib := int64(1024)
	if v := os.Getenv("PILOTWIRE_HAR_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		mib = n
	}
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	n, err := writeBigHAR(fh, mib<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s: %d entries", path, n)
}

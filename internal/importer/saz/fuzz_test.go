package saz

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
)

// FuzzSAZ feeds arbitrary bytes (mostly mutated zips) to Read: no panic,
// every flow keyed and sourced.
func FuzzSAZ(f *testing.F) {
	data, err := os.ReadFile("testdata/httpbin-test.saz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(makeSAZ(f, map[string]string{
		"raw/1_c.txt": "CONNECT a.example:443 HTTP/1.1\r\n\r\n",
		"raw/1_s.txt": "HTTP/1.1 200 Connection Established\r\nClientToServerBytes: 1\r\nServerToClientBytes: 2\r\n\r\n",
		"raw/1_m.xml": metaXML,
		"raw/2_c.txt": "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
		"raw/2_m.xml": metaXML,
	}))
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var flows []flow.Flow
		_ = Read(context.Background(), bytes.NewReader(data), int64(len(data)), func(fl flow.Flow) error {
			if fl.Source != flow.SourceSAZ {
				t.Errorf("flow of source %q: %+v", fl.Source, fl)
			}
			flows = append(flows, fl)
			return nil
		}, func(string, error) {})
		importtest.Check(t, flows)
	})
}

package har

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
)

// FuzzHAR feeds arbitrary bytes to Read: no panic, and every flow it emits
// is keyed, sourced and ends no earlier than it starts.
func FuzzHAR(f *testing.F) {
	for _, name := range []string{"insomnia.har", "with-bom.har", "mitmproxy_error_log.har"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"log":{"entries":[{"startedDateTime":"2024-01-02T03:04:05Z","time":-1,"request":{"method":"CONNECT","url":"a.example:443"},"response":{"status":0},"timings":{"send":1,"x":"y"}}]}}`))
	f.Add([]byte(`{"log":{"entries":[{"startedDateTime":"2024-01-02T03:04:05Z","request":{"method":"GET","url":"http://[::1]:99/"},"response":{"status":200,"_transferSize":-5},"_clientAddress":"[::1]:5000"}`))
	f.Add([]byte("\xef\xbb\xbf{\"log\":{}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var flows []flow.Flow
		_ = Read(context.Background(), bytes.NewReader(data), func(fl flow.Flow) error {
			if fl.Source != flow.SourceHAR {
				t.Errorf("flow of source %q: %+v", fl.Source, fl)
			}
			flows = append(flows, fl)
			return nil
		}, func(string, error) {})
		importtest.Check(t, flows)
	})
}

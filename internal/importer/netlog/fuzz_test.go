package netlog

import (
	"bytes"
	"context"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
)

// FuzzNetlog feeds arbitrary bytes to Read: no panic, every flow keyed and
// sourced, and keys never repeat.
func FuzzNetlog(f *testing.F) {
	f.Add([]byte(miniConstants + `{"type":1,"phase":1,"time":"11","source":{"id":5,"type":1},"params":{"method":"GET","url":"https://a.example/"}},{"type":3,"time":"12","source":{"id":5},"params":{"headers":[":status: 200"]}},{"type":4,"time":"12","source":{"id":5},"params":{"byte_count":10}},{"type":2,"phase":2,"time":"20","source":{"id":5,"type":1},"params":{"net_error":-101}}]}`))
	f.Add([]byte(miniConstants + `{"type":1,"phase":1,"time":1.5e3,"source":{"id":5},"params":{"url":"http://[::1]:80/"}},{"type":1,"phase":1,"time":"9","source":{"id":5},"params":{"url":"x"}}`))
	f.Add([]byte(`{"constants":{"logEventTypes":{},"timeTickOffset":1},"events":[{}],"polledData":{"a":[1]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var flows []flow.Flow
		_ = Read(context.Background(), bytes.NewReader(data), func(fl flow.Flow) error {
			if fl.Source != flow.SourceNetlog {
				t.Errorf("flow of source %q: %+v", fl.Source, fl)
			}
			flows = append(flows, fl)
			return nil
		}, func(string, error) {})
		importtest.Check(t, flows)
	})
}

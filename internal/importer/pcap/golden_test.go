package pcap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
)

// TestGolden reads each sample file under testdata to the flows of its
// golden file, testdata/<sample>.golden.json (go test -run TestGolden
// -update rewrites them), keeping the invariants of importtest.Check.
func TestGolden(t *testing.T) {
	samples, err := filepath.Glob("testdata/*.pcap")
	if err != nil || len(samples) == 0 {
		t.Fatalf("no sample files (%v)", err)
	}
	for _, path := range samples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var c importtest.Collector
			if err := Read(context.Background(), bytes.NewReader(data), c.Emit, c.Skip); err != nil {
				t.Errorf("Read: %v", err)
			}
			if len(c.Skips) > 0 {
				t.Errorf("%d parts skipped, first %+v", len(c.Skips), c.Skips[0])
			}
			importtest.Check(t, c.Flows)
			importtest.Golden(t, strings.TrimSuffix(path, filepath.Ext(path))+".golden.json", c.Flows)
		})
	}
}

package saz

import (
	"bytes"
	"context"
	"testing"

	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
)

// TestGolden reads each sample file under testdata to the flows of its
// golden file, testdata/<sample>.golden.json (go test -run TestGolden
// -update rewrites them), keeping the invariants of importtest.Check.
func TestGolden(t *testing.T) {
	importtest.GoldenSamples(t, "testdata/*.saz", func(data []byte, c *importtest.Collector) error {
		return Read(context.Background(), bytes.NewReader(data), int64(len(data)), c.Emit, c.Skip)
	})
}

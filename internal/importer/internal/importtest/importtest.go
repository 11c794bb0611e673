// Package importtest holds what the format readers' tests share: a
// Collector that keeps what a Read emits and skips. It is imported only
// from _test.go files.
package importtest

import "github.com/pilotwire/pilotwire/internal/flow"

// Skip is one part of a file a reader skipped: where, and why.
type Skip struct{ Where, Reason string }

// Collector keeps the flows and skips of one Read. Pass c.Emit and c.Skip
// as Read's callbacks.
type Collector struct {
	Flows []flow.Flow
	Skips []Skip
}

// Emit keeps f.
func (c *Collector) Emit(f flow.Flow) error {
	c.Flows = append(c.Flows, f)
	return nil
}

// Skip keeps a skipped part.
func (c *Collector) Skip(where string, err error) {
	c.Skips = append(c.Skips, Skip{where, err.Error()})
}

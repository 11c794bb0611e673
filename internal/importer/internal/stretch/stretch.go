// Package stretch bounds a run of input with no readable record, for the
// streaming importers: a file that stops being what it claims to be (a
// wrong --format, /dev/zero, a disk image, a log gone to garbage) ends the
// read with an error naming where the run began, instead of being read,
// and skipped, for as long as it lasts.
package stretch

import (
	"fmt"
	"strings"
)

// The bounds: a run this many records (lines, entries, events) or bytes
// long ends the read. Real files with a damaged part recover well within
// either.
const (
	MaxRecords = 100_000
	MaxBytes   = 64 << 20
)

// Bound follows the runs of one read. The zero Bound needs Unit and What.
type Bound struct {
	Unit string // what a record is called: "line", "entry", "event"
	What string // what the input should be, for the message: "a Squid access.log"

	last    int   // number of the last readable record, 0 before one
	lastEnd int64 // file offset just after it
}

// Good records that record n, ending at file offset end, was readable.
func (b *Bound) Good(n int, end int64) { b.last, b.lastEnd = n, end }

// Check says whether the run without a readable record, from the last
// good one up to record n (which is not readable, or not known to be)
// ending at offset end, has reached a bound.
func (b *Bound) Check(n int, end int64) error {
	switch {
	case n-b.last >= MaxRecords:
		return fmt.Errorf("%s %d: no readable record in %d %s (since %s %d, offset %d): giving up; is the rest %s?",
			b.Unit, b.last+MaxRecords, MaxRecords, plural(b.Unit), b.Unit, b.last+1, b.lastEnd, b.What)
	case end-b.lastEnd >= MaxBytes:
		return fmt.Errorf("offset %d: no readable record in %d MiB (since %s %d, offset %d): giving up; is the rest %s?",
			b.lastEnd+MaxBytes, MaxBytes>>20, b.Unit, b.last+1, b.lastEnd, b.What)
	}
	return nil
}

func plural(unit string) string {
	if s, ok := strings.CutSuffix(unit, "y"); ok {
		return s + "ies"
	}
	return unit + "s"
}

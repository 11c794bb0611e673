//go:build !unix

package procstat

import "time"

// Self is 0 where getrusage is missing: benchmarks print their CPU
// figures as not measured.
func Self() time.Duration { return 0 }

// SelfPeakRSS is -1 where getrusage is missing.
func SelfPeakRSS() int64 { return -1 }

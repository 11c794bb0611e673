//go:build !unix

package main

import "time"

// cpuTime is not measured here; benchmarks then report no per-CPU figure.
func cpuTime() time.Duration { return 0 }

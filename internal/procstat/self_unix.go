//go:build unix

package procstat

import (
	"runtime"
	"syscall"
	"time"
)

// Self is the CPU time (user and system) this process has used so far, to
// the microsecond (getrusage), where /proc's figure counts in ticks: what a
// benchmark reads around the work it times.
func Self() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// SelfPeakRSS is this process's peak resident set size in bytes; -1 when
// it cannot be read.
func SelfPeakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	if runtime.GOOS == "darwin" {
		return ru.Maxrss // bytes on macOS
	}
	return ru.Maxrss * 1024 // KiB elsewhere
}

package importer

import (
	"os"
	"syscall"
)

// peakRSS is the peak resident set of a process that ended, in bytes.
func peakRSS(ps *os.ProcessState) (int64, bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, false
	}
	return ru.Maxrss * 1024, true // kilobytes on Linux
}

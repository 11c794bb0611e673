//go:build !linux

package importer

import "os"

// peakRSS: ru_maxrss is in bytes on macOS and kilobytes on Linux, and
// Windows has none; the bound is checked on Linux only.
func peakRSS(*os.ProcessState) (int64, bool) { return 0, false }

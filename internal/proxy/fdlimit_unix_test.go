//go:build unix

package proxy

import (
	"syscall"
	"testing"
)

// needFiles makes sure this process may open n files, raising its soft
// limit up to the hard one if needed; it skips the test when it cannot.
func needFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("open file limit unknown: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	old := lim.Cur
	lim.Cur = min(n, lim.Max)
	if lim.Cur < n {
		t.Skipf("needs %d open files; the hard limit is %d (ulimit -Hn)", n, lim.Max)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("needs %d open files, the limit is %d and cannot be raised: %v", n, old, err)
	}
	t.Cleanup(func() {
		lim.Cur = old
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	})
}

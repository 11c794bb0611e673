package procstat

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// TestReadSelf: this process's own CPU time grows with work it does, its
// parent is the one the OS names, and a process that is not there reads
// as unknown.
func TestReadSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no /proc here")
	}
	before := CPU(os.Getpid())
	for end := time.Now().Add(150 * time.Millisecond); time.Now().Before(end); {
	}
	s, ok := Read(os.Getpid())
	if !ok || s.PPID != os.Getppid() {
		t.Fatalf("Read(self) = %+v, %v; parent %d", s, ok, os.Getppid())
	}
	if s.Own-before < 50*time.Millisecond {
		t.Errorf("150 ms of busy work added %v of CPU time", s.Own-before)
	}
	if TreeCPU(os.Getpid()) < s.Own {
		t.Errorf("TreeCPU %v below the process's own %v", TreeCPU(os.Getpid()), s.Own)
	}
	if _, ok := Read(1 << 30); ok {
		t.Error("a process that does not exist was read")
	}
}

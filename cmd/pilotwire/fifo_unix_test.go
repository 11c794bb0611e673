//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOutputToFifo: a -o that is a device or a pipe is written to, not
// replaced by a regular file.
func TestOutputToFifo(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "acl")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	r, err := os.OpenFile(fifo, os.O_RDWR, 0) // a reader, so the writer's open does not block
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, stderr, code := pw(t, "endpoints", "export", "--service", "ncsi", "-o", fifo); code != 0 {
		t.Fatalf("export -o fifo: exit %d: %s", code, stderr)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("export -o %s replaced the fifo: %v %v", fifo, fi.Mode(), err)
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := r.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "msftconnecttest.com") {
		t.Errorf("fifo got %q, %v", buf[:n], err)
	}
}

//go:build linux

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/testutil"
	"github.com/pilotwire/pilotwire/internal/web"
)

// TestProxyDiskFull: the store's disk fills while a proxy runs. Forwarding
// goes on; the status page and the log say NOT RECORDING; the flows that
// wait are bounded by --max-backlog and the oldest past it are dropped;
// once there is room again every kept flow is stored, and `sessions` says
// how many of the session's flows were lost.
func TestProxyDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Missing(t, "mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		testutil.Missing(t, "cannot mount a tmpfs: "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })

	bin := proxyBinary(t)
	store := filepath.Join(dir, "pw.db")
	plain, _ := origin(t)
	rp := startProxy(t, bin, store, "--allow-private-targets", "--max-backlog", "1", "--flush-interval", "100ms")
	client := proxyClient(t, rp.addr, nil)
	waitStatus := func(what string, ok func(*web.RecordingStatus) bool) *web.RecordingStatus {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			s := pageStatus(t, rp.ui).Recording
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page's status never said %s: %+v\nproxy stderr:\n%s", what, s, rp.stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range 20 {
		if err := get(client, plain.URL+"/before/"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitStatus("20 writes", func(s *web.RecordingStatus) bool { return s.Writes == 20 })

	// Fill what is left of the tmpfs.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<16)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()

	// Forwarding goes on while nothing can be stored.
	const during = 5000
	for i := range during {
		if err := get(client, plain.URL+"/during/"+strconv.Itoa(i)); err != nil {
			t.Fatalf("request %d while the disk is full: %v", i, err)
		}
	}
	page := waitStatus("NOT RECORDING", func(s *web.RecordingStatus) bool { return !s.OK })
	if !regexp.MustCompile(`^NOT RECORDING since \d\d:\d\d:\d\d: .*full.*; [\d,]+ flows waiting; [\d,]+ flows dropped \(backlog full\)`).MatchString(page.Text) {
		t.Errorf("the page's status: %+v", page)
	}

	// Room again: what waited is stored.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitStatus("recording again", func(s *web.RecordingStatus) bool { return s.OK && strings.HasPrefix(s.Text, "recording") })
	rp.cmd.Process.Signal(syscall.SIGTERM)
	if code := rp.wait(t); code != 0 {
		t.Fatalf("proxy exited %d: %s", code, rp.stderr)
	}
	log := rp.stderr.String()
	for _, want := range []string{"NOT RECORDING since", "recording again", "flows were dropped while the store could not be written"} {
		if !strings.Contains(log, want) {
			t.Errorf("proxy log lacks %q:\n%s", want, log)
		}
	}

	var kept, lost int64
	for _, fl := range proxyStoreFlows(t, store) {
		if fl.Kind == flow.KindLost {
			lost += fl.Lost
		} else {
			kept++
		}
	}
	if lost == 0 || kept+lost != 20+during {
		t.Errorf("stored %d flows and %d lost, want %d in all, some lost", kept, lost, 20+during)
	}
	out, _, err := runCmd(t, "--store", store, "sessions")
	if err != nil {
		t.Fatal(err)
	}
	if want := "incomplete: " + strconv.FormatInt(lost, 10) + " flows not stored (the store could not be written)"; !strings.Contains(out, want) {
		t.Errorf("sessions lacks %q:\n%s", want, out)
	}
}

package main

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReadBesideBusyProxy: `flows` and `sessions` read the store of a
// running proxy under load, again and again. No read fails, no write of
// the proxy fails or is held up into its busy timeout, and every request
// is stored.
func TestReadBesideBusyProxy(t *testing.T) {
	bin := proxyBinary(t)
	store := t.TempDir() + "/pw.db"
	plain, _ := origin(t)
	rp := startProxy(t, bin, store, "--allow-private-targets", "--flush-interval", "100ms")
	client := proxyClient(t, rp.addr, nil)

	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := get(client, plain.URL+"/w"+strconv.Itoa(w)+"/"+strconv.Itoa(i)); err != nil {
					t.Errorf("request through the proxy: %v", err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	reads := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) || reads < 10; reads++ {
		cmd := []string{"flows", "--newest", "--limit", "20"}
		if reads%2 == 1 {
			cmd = []string{"sessions"}
		}
		if _, errs, code := pw(t, append([]string{"--store", store}, cmd...)...); code != 0 && !strings.Contains(errs, "no flows") {
			t.Fatalf("read %d (%s) beside the busy proxy: exit %d: %s", reads, cmd[0], code, errs)
		}
	}
	close(stop)
	wg.Wait()
	rp.cmd.Process.Signal(syscall.SIGTERM)
	if code := rp.wait(t); code != 0 {
		t.Fatalf("proxy exited %d: %s", code, rp.stderr)
	}
	if log := rp.stderr.String(); strings.Contains(log, "NOT RECORDING") || strings.Contains(log, "locked") {
		t.Errorf("the proxy's writes failed beside the readers:\n%s", log)
	}
	if n := int64(len(proxyStoreFlows(t, store))); n != sent.Load() || n < 100 {
		t.Errorf("%d flows stored, %d requests sent", n, sent.Load())
	}
	t.Logf("%d reads beside %d requests", reads, sent.Load())
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/pilotwire/pilotwire/internal/capture"
	"github.com/pilotwire/pilotwire/internal/flow"
)

const captureExamples = `  sudo pilotwire capture --interface eth1               # a mirror port, a bridge, a lab VM's switch
  sudo pilotwire capture --interface vEthernet0 --write run.pcapng   # keep the packets too
  pilotwire serve                                        # the page over what it stores, live
  pilotwire report                                       # the annotated timeline

Passive: nothing is forwarded or changed, and the device needs no proxy setting. Connections
are recorded as they pass (a TLS connection by its SNI as soon as its ClientHello passes, plain
HTTP with its URL, DNS questions and answers); Linux only, needs root or CAP_NET_RAW.
`

func runCapture(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "capture", "capture --interface IF [flags]", captureExamples)
	var iface, write string
	var flushInterval time.Duration
	fs.StringVar(&iface, "interface", "", "the network interface `IF` to read (required)")
	fs.StringVar(&write, "write", "", "also keep the packets in `FILE` (pcapng; refused if it exists)")
	fs.DurationVar(&flushInterval, "flush-interval", 500*time.Millisecond, "store recorded flows at least this often (at most 1s)")
	var rf recordingFlags
	rf.register(fs, "capture")
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("capture: unexpected argument %q", fs.Arg(0))
	}
	if iface == "" {
		return usagef("capture: --interface IF is required (ip link lists them)")
	}
	if err := rf.check(); err != nil {
		return usagef("capture: %v", err)
	}
	if flushInterval <= 0 || flushInterval > time.Second {
		return usagef("capture: --flush-interval %s: must be more than 0 and at most 1s", flushInterval)
	}
	if _, err := net.InterfaceByName(iface); err != nil {
		return usagef("capture: --interface %s: %v (ip link lists them)", iface, err)
	}
	o := capture.Options{Interface: iface}
	if write != "" {
		f, err := os.OpenFile(write, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return usagef("capture: --write %s: the file exists; give another name", write)
			}
			return fmt.Errorf("capture: --write: %w", err)
		}
		defer f.Close()
		o.Write = f
	}
	var id [4]byte
	rand.Read(id[:])
	o.Prefix = "cap-" + hex.EncodeToString(id[:]) + "-"
	st, err := rf.openStore(ctx, g, "capture")
	if err != nil {
		return err
	}
	defer st.Close()
	sp, err := rf.openSpool(g, "capture")
	if err != nil {
		return err
	}
	if sp != nil {
		defer sp.Close()
	}
	rec := flow.NewRecorder(st, flow.RecorderOptions{FlushInterval: flushInterval, Name: rf.name, Spool: spoolOf(sp)})
	o.Record = rec.Record
	fmt.Fprintf(g.stdout, "pilotwire capture: reading %s (passive: nothing is forwarded)\n  flows: %s (stored every %s)\n", iface, g.storeName(), flushInterval)
	if write != "" {
		fmt.Fprintf(g.stdout, "  packets: %s\n", write)
	}
	stats, runErr := capture.Run(ctx, o)
	recErr := rec.Close()
	fmt.Fprintf(g.stderr, "pilotwire capture: stopped; %d frames (%s), %d flow records stored in %s\n", stats.Frames, humanBytes(stats.Bytes), stats.Flows, g.storeName())
	if errors.Is(runErr, capture.ErrNotSupported) {
		return usagef("capture: %v", runErr)
	}
	if runErr != nil {
		return runErr
	}
	if recErr != nil {
		return fmt.Errorf("capture: storing flows: %w", recErr)
	}
	return nil
}

// Package capture is pilotwire's passive capture (pilotwire capture): it
// reads the Ethernet frames passing an interface (a mirror port, a bridge,
// the host side of a lab VM's virtual switch) from an AF_PACKET socket,
// pure Go, and turns them into flows with the pcap importer's decoder as
// they pass (pcap.Stream), optionally keeping the frames in a pcapng file.
// Nothing is forwarded or changed: the device needs no setting.
//
// Linux only; elsewhere Run says so. It needs CAP_NET_RAW.
//
// It owns the socket and the loop; it must not import the stores or the
// proxy (cmd hands it a Recorder's Record).
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/pcap"
)

// Options say what to capture and where the flows go.
type Options struct {
	// Interface is the network interface to read, e.g. "eth1".
	Interface string
	// Prefix starts every flow's Key (unique per run: two captures into
	// one store never share a Key).
	Prefix string
	// Record receives each flow: a TLS connection when its ClientHello
	// passes and again when it ends, everything else once. It must not
	// block (flow.Recorder.Record does not).
	Record func(flow.Flow)
	// Write, if set, receives the frames as a pcapng file.
	Write io.Writer
	// Skip is told of frames too damaged to decode; nil: dropped quietly.
	Skip func(where string, err error)
}

// Stats count what a capture saw.
type Stats struct {
	Frames, Bytes int64
	Flows         int64 // records passed to Record
}

// ErrNotSupported is returned by Run where there is no AF_PACKET.
var ErrNotSupported = errors.New("passive capture needs Linux (AF_PACKET sockets)")

// pollEvery bounds a read, so the loop sees ctx end and moves the
// decoder's clock on a quiet interface.
const pollEvery = 200 * time.Millisecond

// maxFrame is the largest frame read (jumbo frames and offloaded
// segments included).
const maxFrame = 256 << 10

// frameSource is an open capture socket.
type frameSource interface {
	// read returns the next frame, or (0, nil) after pollEvery with none.
	read(buf []byte) (int, error)
	close() error
}

// Run captures until ctx ends, then emits the connections still open and
// returns what it saw. An error of the socket or of writing the file ends
// it early, with the flows so far emitted.
func Run(ctx context.Context, o Options) (Stats, error) {
	var st Stats
	if o.Record == nil {
		return st, errors.New("capture: no Record")
	}
	src, err := open(o.Interface)
	if err != nil {
		return st, err
	}
	defer src.close()
	var w *pcapgo.NgWriter
	if o.Write != nil {
		if w, err = pcapgo.NewNgWriter(o.Write, layers.LinkTypeEthernet); err != nil {
			return st, fmt.Errorf("capture: pcapng: %w", err)
		}
	}
	s := pcap.NewStream(ctx, o.Prefix, "live:"+o.Interface, func(f flow.Flow) error {
		st.Flows++
		o.Record(f)
		return nil
	}, o.Skip)
	buf := make([]byte, maxFrame)
	var runErr error
	for ctx.Err() == nil {
		n, err := src.read(buf)
		now := time.Now()
		if err != nil {
			runErr = fmt.Errorf("capture: reading %s: %w", o.Interface, err)
			break
		}
		if n == 0 {
			s.Tick(now)
			continue
		}
		st.Frames++
		st.Bytes += int64(n)
		if w != nil {
			ci := gopacket.CaptureInfo{Timestamp: now, CaptureLength: n, Length: n, InterfaceIndex: 0}
			if err := w.WritePacket(ci, buf[:n]); err != nil {
				runErr = fmt.Errorf("capture: writing the pcapng file: %w", err)
				break
			}
		}
		s.Packet(now, buf[:n])
	}
	s.Close()
	if w != nil {
		if err := w.Flush(); err != nil && runErr == nil {
			runErr = fmt.Errorf("capture: writing the pcapng file: %w", err)
		}
	}
	return st, runErr
}

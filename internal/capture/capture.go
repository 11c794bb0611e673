// Package capture is pilotwire's passive capture (pilotwire capture): it
// reads the Ethernet frames passing an interface (a mirror port, a bridge,
// the host side of a lab VM's virtual switch) from an AF_PACKET socket,
// pure Go, and turns them into flows with the pcap importer's decoder as
// they pass (pcap.Stream), optionally keeping the frames in a pcapng file.
// Nothing is forwarded or changed: the device needs no setting.
//
// pilotwire gateway uses it too, on its LAN interface, to note the UDP it
// forwards: a kernel filter (Options.Filter) passes it only those frames,
// and the stream makes flows of every UDP association (Options.UDPIdle).
//
// Linux only; elsewhere Open and Run say so. It needs CAP_NET_RAW.
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
	"golang.org/x/net/bpf"

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
	// Record receives each flow: a TLS connection or a QUIC association
	// when its ClientHello passes and again when it ends, everything else
	// once. It must not block (flow.Recorder.Record does not).
	Record func(flow.Flow)
	// Write, if set, receives the frames as a pcapng file.
	Write io.Writer
	// Skip is told of frames too damaged to decode; nil: dropped quietly.
	Skip func(where string, err error)
	// Filter, if not empty, is a classic BPF program the kernel runs on
	// each frame before the socket gets it: only the frames it accepts
	// are read (and copied at all).
	Filter []bpf.RawInstruction
	// UDPIdle, if not zero, makes flows of UDP traffic that is neither
	// DNS, QUIC nor HTTP too (NTP and the rest, pcap.Stream.NoteUDP),
	// each association ending after UDPIdle of silence.
	UDPIdle time.Duration
}

// Stats count what a capture saw.
type Stats struct {
	Frames, Bytes int64
	Flows         int64 // records passed to Record
}

// ErrNotSupported is returned by Open and Run where there is no AF_PACKET.
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

// Capture is an open capture socket, to be read by Run.
type Capture struct {
	o   Options
	src frameSource
}

// Open opens the capture socket of o.Interface (with o.Filter), so that a
// caller learns at once whether it can capture there.
func Open(o Options) (*Capture, error) {
	if o.Record == nil {
		return nil, errors.New("capture: no Record")
	}
	src, err := open(o.Interface, o.Filter)
	if err != nil {
		return nil, err
	}
	return &Capture{o: o, src: src}, nil
}

// Run opens the capture (Open) and runs it (Capture.Run).
func Run(ctx context.Context, o Options) (Stats, error) {
	c, err := Open(o)
	if err != nil {
		return Stats{}, err
	}
	return c.Run(ctx)
}

// Run captures until ctx ends, then emits the connections still open,
// closes the socket and returns what it saw. An error of the socket or of
// writing the file ends it early, with the flows so far emitted.
func (c *Capture) Run(ctx context.Context) (Stats, error) {
	var st Stats
	o := c.o
	defer c.src.close()
	var w *pcapgo.NgWriter
	var err error
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
	if o.UDPIdle > 0 {
		s.NoteUDP(o.UDPIdle)
	}
	buf := make([]byte, maxFrame)
	var runErr error
	for ctx.Err() == nil {
		n, err := c.src.read(buf)
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

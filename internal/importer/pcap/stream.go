package pcap

import (
	"context"
	"fmt"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Stream turns the packets of a live capture (pilotwire capture, an
// AF_PACKET socket on an interface) into flows as they pass, with the
// same decoder Read uses for files: connections become flows when they
// close or after five minutes of silence, a TLS connection is emitted
// open as soon as its ClientHello is seen (and again, same Key, when it
// ends; a QUIC association likewise once its Initial's ClientHello is
// read), DNS answers name later connections. Memory is bounded by the
// connections open at once, however long it runs.
//
// Keys are prefixed with prefix (a run's own, so that two captures into
// one store never share a Key). A Stream is not safe for concurrent use.
type Stream struct {
	rd     *reader
	p      packet
	prefix string
}

// NewStream returns a Stream of Ethernet frames that emits each flow with
// Key prefixed by prefix and SourceFile set to source (e.g. "live:eth1").
// A frame too damaged to decode is reported to skip and dropped.
func NewStream(ctx context.Context, prefix, source string, emit func(flow.Flow) error, skip func(where string, err error)) *Stream {
	s := &Stream{prefix: prefix}
	if skip == nil {
		skip = func(string, error) {}
	}
	s.rd = newReader(ctx, func(f flow.Flow, _ []int) error {
		f.Key = prefix + f.Key
		f.SourceFile = source
		return emit(f)
	}, skip)
	s.rd.live = true
	return s
}

// Packet decodes one Ethernet frame captured at ts. It returns the first
// error emit returned, then keeps returning it.
func (s *Stream) Packet(ts time.Time, frame []byte) error {
	rd := s.rd
	if rd.err != nil {
		return rd.err
	}
	rd.pkt++
	if err := decode(linkEthernet, frame, &s.p); err != nil {
		if err != errIgnore {
			rd.skip(fmt.Sprintf("frame %d", rd.pkt), err)
		}
		rd.tick(ts)
		return rd.err
	}
	rd.packet(ts, &s.p)
	return rd.err
}

// Tick moves the capture's clock to now when no packet came for a while,
// so idle connections and unanswered queries still end on time.
func (s *Stream) Tick(now time.Time) error {
	s.rd.tick(now)
	return s.rd.err
}

// NoteUDP makes the UDP traffic that is neither DNS, QUIC nor HTTP into
// flows too: one flow of kind udp per association (client address and
// port to server address and port; the side that sent first is the
// client), with the bytes each way; NTP (port 123) is said in its Note
// ("NTP version 4"), with an Error when the server never answered. An
// association ends after idle of silence; at most 16384 are kept at once
// (the least recently active ends first). pilotwire gateway notes the UDP
// it forwards this way. Call it before the first packet.
func (s *Stream) NoteUDP(idle time.Duration) {
	if idle <= 0 {
		idle = time.Minute
	}
	s.rd.udpIdle = idle
}

// Close emits every connection and query still open.
func (s *Stream) Close() error { return s.rd.flushAll() }

package capture

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// packetSocket is an AF_PACKET socket bound to one interface, reading
// every protocol (that its filter accepts), with a receive timeout of
// pollEvery.
type packetSocket struct{ fd int }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func open(name string, filter []bpf.RawInstruction) (frameSource, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("capture: interface %q: %w", name, err)
	}
	// Protocol 0: the socket receives nothing until it is bound, after
	// its filter is attached, so no unfiltered frame gets in first.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("capture: %s: reading packets needs root or CAP_NET_RAW: %w", name, err)
		}
		return nil, fmt.Errorf("capture: packet socket: %w", err)
	}
	if len(filter) > 0 {
		prog := make([]unix.SockFilter, len(filter))
		for i, ins := range filter {
			prog[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
		}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("capture: attaching the packet filter: %w", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("capture: bind to %s: %w", name, err)
	}
	tv := unix.NsecToTimeval(pollEvery.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("capture: receive timeout: %w", err)
	}
	// A bigger receive buffer rides out bursts (the kernel caps it).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	return &packetSocket{fd: fd}, nil
}

func (s *packetSocket) read(buf []byte) (int, error) {
	for {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EWOULDBLOCK):
			return 0, nil
		case errors.Is(err, unix.EINTR):
			continue
		}
		return 0, err
	}
}

func (s *packetSocket) close() error { return unix.Close(s.fd) }

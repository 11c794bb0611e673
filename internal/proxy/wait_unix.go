//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import (
	"net"
	"syscall"
)

// waitsForData says that waitReadable really waits on this platform.
const waitsForData = true

// waitReadable blocks until c has data to read (or EOF, or an error),
// honouring c's read deadline, without reading: it peeks one byte into a
// stack array through the runtime's poller, so a waiting tunnel holds no
// buffer.
func waitReadable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var b [1]byte
	return rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // not readable: park until the poller says so
			}
			return true // data, EOF or an error: the next read reports it
		}
	})
}

// readableNow reports whether c has data to read (or EOF, or an error)
// at this moment, without waiting or reading.
func readableNow(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var b [1]byte
	readable := false
	_ = rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err == syscall.EINTR {
				continue
			}
			readable = err != syscall.EAGAIN
			return true // never wait
		}
	})
	return readable
}

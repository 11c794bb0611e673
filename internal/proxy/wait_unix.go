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
	_, err := peekOne(c, true)
	return err
}

// readableNow reports whether c has data to read (or EOF, or an error)
// at this moment, without waiting or reading.
func readableNow(c net.Conn) bool {
	readable, _ := peekOne(c, false)
	return readable
}

// peekOne looks for a byte to read on c without reading it; wait says
// whether to park until there is one. A connection without a descriptor
// reports neither readable nor an error.
func peekOne(c net.Conn, wait bool) (readable bool, err error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, nil
	}
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return !wait // not readable: park until the poller says so, if waiting
			}
			readable = true // data, EOF or an error: the next read reports it
			return true
		}
	})
	return readable, err
}

//go:build !linux

package proxy

import (
	"errors"
	"io"
	"net"
	"time"
)

// errBurstOver is never returned here: the copy runs to EOF or deadline.
var errBurstOver = errors.New("burst over")

// copyBurst copies src to dst until EOF, an error or src's read deadline
// (where the relay waits for data: burstWindow from now), through a pooled
// buffer (io.Copy would allocate one per call).
func copyBurst(dst, src net.Conn) (int64, error) {
	if waitsForData {
		_ = src.SetReadDeadline(time.Now().Add(burstWindow))
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}

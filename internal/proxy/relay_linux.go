package proxy

import (
	"errors"
	"io"
	"net"
	"time"
)

// errBurstOver says a burst ended because the source had no more data for
// now; the relay goes back to waiting.
var errBurstOver = errors.New("burst over")

// copyBurst copies src to dst until EOF, an error, burstWindow or the end
// of the data that is there. It reads first into a pooled buffer:
// most bursts (TLS handshakes, requests, small responses) fit in it. Only
// when the buffer fills, a bulk transfer, does it switch to io.Copy, which
// between two TCP connections splices in the kernel. Go keeps the pipe pair
// a splice needs in a pool that only garbage collection empties, so
// splicing every small burst of thousands of tunnels would leave hundreds
// of pipes open.
func copyBurst(dst, src net.Conn) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	n, err := src.Read(*bp)
	var written int64
	if n > 0 {
		m, werr := dst.Write((*bp)[:n])
		written = int64(m)
		if werr != nil {
			bufPool.Put(bp)
			return written, werr
		}
	}
	full := n == len(*bp)
	bufPool.Put(bp)
	switch {
	case err == io.EOF:
		return written, nil
	case err != nil:
		return written, err
	case !full:
		return written, errBurstOver
	}
	// Only now the burst's deadline: a timer earlier than any other wakes
	// the runtime's poller thread, a cost on every small burst that the
	// one read above never needed.
	_ = src.SetReadDeadline(time.Now().Add(burstWindow))
	m, err := io.Copy(dst, src)
	return written + m, err
}

//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package proxy

import "net"

// waitsForData says that waitReadable does not wait on this platform: the
// relay blocks in its copy instead, holding a pooled buffer.
const waitsForData = false

func waitReadable(net.Conn) error { return nil }

// readableNow says no: this platform cannot tell without reading.
func readableNow(net.Conn) bool { return false }

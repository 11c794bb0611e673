//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import (
	"net"
	"testing"
)

// TestReadableNow: a TCP connection with nothing sent is not readable; with
// bytes waiting, or after the peer's close, it is; and asking reads
// nothing.
func TestReadableNow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	if readableNow(server) {
		t.Fatal("readable before anything was sent")
	}
	if _, err := client.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bytes sent", func() bool { return readableNow(server) })
	if !readableNow(server) { // asking again: nothing was consumed
		t.Fatal("not readable on the second look")
	}
	buf := make([]byte, 8)
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read %q, %v; want the bytes sent", buf[:n], err)
	}
	if readableNow(server) {
		t.Fatal("readable after everything was read")
	}
	client.Close()
	waitFor(t, "the close", func() bool { return readableNow(server) })

	if readableNow(fakeConn{}) {
		t.Fatal("a connection without a descriptor said readable")
	}
}

type fakeConn struct{ net.Conn }

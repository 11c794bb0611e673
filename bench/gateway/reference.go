//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/pilotwire/pilotwire/internal/gateway"
)

// referencePort is where the reference relay listens in the gateway
// namespace.
const referencePort = 7777

// The server's ports come in three pairs (throughput, setup), one for each
// way through the gateway namespace.
const (
	plainOffset     = 10 // routed by the kernel, untracked: plain routing
	referenceOffset = 20 // redirected to the reference relay
)

// route is one way through the gateway namespace: its name and the offset
// of its server ports from tputPort and setupPort (pilotwire's: 0).
type route struct {
	name   string
	offset int
}

// benchRules make the plain and reference ports bypass pilotwire, whose
// own rules (in a table of its own) take all the rest of the device's TCP:
// the plain ports are not tracked, in either direction, so no NAT rule
// sees them and the kernel routes them as with no firewall at all; the
// reference ports are redirected to the reference relay by a chain that
// runs before pilotwire's (a connection's first NAT decision stands).
var benchRules = fmt.Sprintf(`table inet pwbench {
	chain raw {
		type filter hook prerouting priority raw; policy accept;
		iifname "lan0" tcp dport { %[1]d, %[2]d } notrack
		iifname "wan0" tcp sport { %[1]d, %[2]d } notrack
	}
	chain prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		iifname "lan0" tcp dport { %[3]d, %[4]d } redirect to :%[5]d
	}
}
`, tputPort+plainOffset, setupPort+plainOffset, tputPort+referenceOffset, setupPort+referenceOffset, referencePort)

// relay is the reference relay: the least a transparent TCP relay in user
// space does, for a floor under pilotwire's figures. It accepts each
// redirected connection, asks for its original destination, connects
// there at once and copies both ways with io.Copy, which between two TCP
// connections splices in the kernel. No peek of the first bytes, no
// record, no limits, no idle timeout.
func relay() error {
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", referencePort))
	if err != nil {
		return err
	}
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
		<-sigs
		ln.Close()
	}()
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go relayOne(c.(*net.TCPConn))
	}
}

func relayOne(c *net.TCPConn) {
	defer c.Close()
	dst, err := gateway.OriginalDst(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reference relay:", err)
		return
	}
	s, err := net.Dial("tcp", dst.String())
	if err != nil {
		fmt.Fprintln(os.Stderr, "reference relay:", err)
		return
	}
	server := s.(*net.TCPConn)
	defer server.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, server)
		_ = c.CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(server, c)
	_ = server.CloseWrite()
	<-done
}

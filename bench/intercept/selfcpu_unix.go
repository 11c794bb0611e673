//go:build unix

package main

import (
	"syscall"
	"time"
)

// selfCPU is this process's CPU time: the clients and the upstream server,
// which share the machine with the proxy.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

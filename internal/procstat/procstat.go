// Package procstat reads the CPU time of processes from Linux's
// /proc/PID/stat, for the benchmarks and the tests that print what a
// server (pilotwire, Squid, PostgreSQL) spent, and this process's own
// (Self, SelfPeakRSS, from getrusage). Where there is no /proc every
// figure of another process is 0. It imports nothing of the project.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// tick is the kernel's clock tick for CPU times: USER_HZ is 100 on every
// Linux architecture Go supports.
const tick = 10 * time.Millisecond

// Stat is what /proc/PID/stat says of a process's CPU time.
type Stat struct {
	Own      time.Duration // user and system time of the process itself
	Children time.Duration // of its children that ended and were waited for
	PPID     int           // its parent
}

// Read reads the Stat of process pid; ok is false when it cannot be read
// (no such process, no /proc).
func Read(pid int) (s Stat, ok bool) {
	if pid <= 0 {
		return s, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, false
	}
	// After "pid (comm) ": state, ppid, … utime (the 14th field), stime,
	// cutime, cstime. comm may hold spaces and parentheses: the last ')'
	// ends it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return s, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return s, false
	}
	s.PPID, _ = strconv.Atoi(f[1])
	var t [4]int64
	for k := range t {
		t[k], _ = strconv.ParseInt(f[11+k], 10, 64)
	}
	s.Own, s.Children = time.Duration(t[0]+t[1])*tick, time.Duration(t[2]+t[3])*tick
	return s, true
}

// CPU is the CPU time process pid itself has used so far; 0 when unknown.
func CPU(pid int) time.Duration {
	s, _ := Read(pid)
	return s.Own
}

// TreeCPU is the CPU time of process root and its children: its own, that
// of the children it waited for, and that of the children running now (a
// PostgreSQL postmaster and its backends). 0 when unknown.
func TreeCPU(root int) time.Duration {
	s, ok := Read(root)
	if !ok {
		return 0
	}
	total := s.Own + s.Children
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == root {
			continue
		}
		if c, ok := Read(pid); ok && c.PPID == root {
			total += c.Own
		}
	}
	return total
}

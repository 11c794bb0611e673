//go:build !unix

package main

import "time"

// selfCPU is not measured where getrusage is missing: the bench prints "-".
func selfCPU() time.Duration { return 0 }

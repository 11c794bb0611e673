//go:build !linux

package capture

import "golang.org/x/net/bpf"

func open(string, []bpf.RawInstruction) (frameSource, error) { return nil, ErrNotSupported }

//go:build !linux

package capture

func open(string) (frameSource, error) { return nil, ErrNotSupported }

//go:build !unix

package spool

// lockDir does not lock where flock is missing: give each proxy its own
// spool directory.
func lockDir(string) (func(), error) { return func() {}, nil }

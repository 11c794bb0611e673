//go:build !unix

package sqlite

import "os"

// writable reports whether path looks writable from its mode bits (the
// read-only attribute on Windows).
func writable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Perm()&0o200 != 0
}

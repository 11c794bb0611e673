//go:build unix

package sqlite

import "syscall"

// writable reports whether this process may write path, as access(2)
// judges it: for root too, a read-only mount (EROFS) or an immutable file
// (chattr +i, EPERM) is not writable, though the mode bits do not stop
// root.
func writable(path string) bool {
	const wOK = 2 // W_OK
	return syscall.Access(path, wOK) == nil
}

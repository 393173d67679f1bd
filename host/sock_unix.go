//go:build unix

package host

import "syscall"

// rawSockets says the host may write to and peek at its sockets directly.
const rawSockets = true

// writeNonBlocking writes what of p the socket takes now.
func writeNonBlocking(fd uintptr, p []byte) (int, error) { return syscall.Write(int(fd), p) }

// nothingToRead reports whether the socket has no byte, no end and no
// error to give yet.
func nothingToRead(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN || err == syscall.EINTR
}

//go:build unix

package wire

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// NewChannel makes a data channel: ours is this process's end, theirs the
// file a child inherits (cmd.ExtraFiles) and opens with FileConn. The
// caller closes theirs once the child has started.
func NewChannel(name string) (ours net.Conn, theirs *os.File, err error) {
	syscall.ForkLock.RLock() // no fork between the socketpair and close-on-exec
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), name)
	theirs = os.NewFile(uintptr(fds[1]), name)
	ours, err = net.FileConn(mine)
	mine.Close() // FileConn has its own copy
	if err != nil {
		theirs.Close()
		return nil, nil, fmt.Errorf("socket: %w", err)
	}
	return ours, theirs, nil
}

// FileConn opens the data channel a parent passed as file descriptor fd.
func FileConn(fd string) (net.Conn, error) {
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return nil, fmt.Errorf("data channel file descriptor %q is not one a parent passes", fd)
	}
	f := os.NewFile(uintptr(n), "data-channel")
	defer f.Close()
	conn, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("open data channel (fd %d): %w", n, err)
	}
	return conn, nil
}

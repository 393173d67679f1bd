//go:build unix

package multiproc

import (
	"fmt"
	"runtime/debug"
	"syscall"
)

// limitMemory caps the worker's heap: a soft limit the collector works to,
// and a hard RLIMIT_DATA past which the runtime cannot map more memory and
// the worker dies alone.
func limitMemory(bytes int64) error {
	debug.SetMemoryLimit(bytes * 9 / 10)
	lim := &syscall.Rlimit{Cur: uint64(bytes), Max: uint64(bytes)}
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, lim); err != nil {
		return fmt.Errorf("RLIMIT_DATA: %w", err)
	}
	return nil
}

//go:build unix

package multiproc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"syscall"
)

// limitMemory caps the worker's heap: a soft limit the collector works to,
// and a hard RLIMIT_DATA past which the runtime cannot map more memory and
// the worker dies alone. The hard limit counts from what the process has
// mapped already (the runtime's arenas and metadata, about 100 MiB of
// address space before the first task): set to the limit alone, it is below
// that, so the first mapping the runtime needs later (a new span class, a
// goroutine stack) would kill a worker that runs nothing unusual.
func limitMemory(limit int64) error {
	debug.SetMemoryLimit(limit * 9 / 10)
	hard := uint64(limit) + dataMapped()
	lim := &syscall.Rlimit{Cur: hard, Max: hard}
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, lim); err != nil {
		return fmt.Errorf("RLIMIT_DATA: %w", err)
	}
	return nil
}

// dataMapped is the size of the process's private writable mappings, which
// RLIMIT_DATA bounds (VmData in /proc/self/status); 0 where that file is
// not there.
func dataMapped() uint64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		kb, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmData:"))
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(kb), []byte(" kB"))), 10, 64)
		if err != nil {
			return 0
		}
		return n << 10
	}
	return 0
}

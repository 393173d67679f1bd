package multiproc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// A worker's Go runtime writes its fatal report (a fatal error, an
// unrecovered panic) to a file of its own too (debug.SetCrashOutput),
// named by its process id in crashDir, so that whoever sees the worker
// die with tasks in flight (the host, or a plugin that serves its
// tasks itself) can tell why: a worker that ran out of memory under its
// worker_memory_mb cap answers its task resource_exhausted, not
// executor_failed. The runtime writes the report before the process
// exits, and so before its socket ends.

// maxCrashReport bounds what is read of a report: its first lines say
// why.
const maxCrashReport = 16 << 10

// crashDir is the per-user directory of the reports.
func crashDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("wslab-worker-crash-%d", os.Getuid()))
}

func crashPath(pid int) string { return filepath.Join(crashDir(), strconv.Itoa(pid)) }

// crashOutput, in a worker, has the runtime copy its fatal report to
// crashPath(os.Getpid()); the function it returns removes the file, for
// a worker that exits by itself. It is opened before any sandbox, which
// then need not let the worker open it.
func crashOutput() (func(), error) {
	dir := crashDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("crash report directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("crash report directory: %w", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || !ownedByMe(fi) {
		return nil, fmt.Errorf("crash report directory %s is not a directory of this user's that only it may write to (%v)", dir, fi.Mode())
	}
	path := crashPath(os.Getpid())
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("crash report: %w", err)
	}
	if err := debug.SetCrashOutput(f, debug.CrashOptions{}); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("crash report: %w", err)
	}
	f.Close() // SetCrashOutput keeps a duplicate
	return func() {
		debug.SetCrashOutput(nil, debug.CrashOptions{})
		os.Remove(path)
	}, nil
}

// crashReport reads and removes the report worker process pid left as it
// died: "" when it left none.
func crashReport(pid int) string {
	path := crashPath(pid)
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer os.Remove(path)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCrashReport))
	if err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	return string(b)
}

// allocatorThrows are the runtime functions (Go 1.26) that throw when the
// OS refuses the runtime memory: mmap's ENOMEM under the worker_memory_mb
// rlimit ("fatal error: runtime: out of memory", "… cannot allocate
// memory", "out of memory allocating heap arena metadata").
var allocatorThrows = []string{
	"runtime.sysMapOS(", "runtime.sysUsedOS(", "runtime.(*mheap).sysAlloc(", "runtime.persistentalloc1(",
	"runtime.(*mcache).refill(", "runtime.(*mcache).allocLarge(", "runtime.(*pageAlloc).grow(",
	"runtime.recordspan(", "runtime.newArenaMayUnlock(", "runtime.getempty(", "runtime.stackpoolalloc(",
	"runtime.stackalloc(", "runtime.rawruneslice(", "runtime.(*userArena).refill(",
}

// outOfMemory says, from a crash report, where the runtime ran out of
// memory; "" when it did not. The runtime prints the "fatal error:" line
// before it counts itself as dying, and copies to the report only what
// follows, the stacks: so the report is read by its first frame, the
// function that called runtime.throw. A report that holds the fatal
// error's line (a later Go) is read by it.
func outOfMemory(report string) string {
	afterThrow := false
	for line := range strings.Lines(report) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "fatal error:"):
			if strings.Contains(line, "out of memory") || strings.Contains(line, "cannot allocate memory") {
				return line
			}
		case strings.HasPrefix(line, "runtime.throw("):
			afterThrow = true
		case afterThrow && !strings.HasPrefix(line, "\t"):
			for _, f := range allocatorThrows {
				if strings.HasPrefix(line, f) {
					return "Go's " + strings.TrimSuffix(f, "(") + " was refused memory"
				}
			}
			return ""
		}
	}
	return ""
}

// Package sandbox confines a worker process before it takes a task:
// no_new_privs and no capabilities, a Landlock ruleset (its own binary to
// read, the data directory to read and write, no TCP), a seccomp filter
// (no new sockets, no process creation, no ptrace, mount, kernel modules
// or keyrings), rlimits and, where the machine lets it, a cgroup with
// memory and CPU limits. multiproc's workers apply it under
// [multiproc] sandbox = strict.
//
// Strict needs every mechanism but the cgroup: Check says which the kernel
// lacks, and the host refuses to start. Best-effort applies what there is
// and says what it left out.
package sandbox

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/wslab/wslab/taskproto"
)

// Modes of [multiproc] sandbox.
const (
	None       = "none"
	Strict     = "strict"
	BestEffort = "best-effort"
)

// Modes are the values [multiproc] sandbox accepts.
var Modes = []string{None, Strict, BestEffort}

// Policy is what a worker is confined to.
type Policy struct {
	Mode string
	// Exe is the worker's own binary, the one file outside DataDir it
	// may read (the Go runtime has read the rest it needs by then).
	Exe string
	// DataDir is where io tasks read and write.
	DataDir string
	// Writable are other directories the worker writes (a CPU profile's).
	Writable []string
	// MemoryBytes caps the cgroup's memory (0: no cgroup memory limit);
	// the worker's heap has its own limit beside it.
	MemoryBytes int64
	// CPUs caps the cgroup's CPU time, in cores (0: no CPU limit).
	CPUs int
	// CPUSeconds is RLIMIT_CPU: CPU seconds a worker may use before it is
	// killed and replaced (0: no limit).
	CPUSeconds uint64
	// OpenFiles is RLIMIT_NOFILE.
	OpenFiles uint64
	// FileBytes is RLIMIT_FSIZE: the largest file a task may write.
	FileBytes uint64
	// Cgroup names the worker's cgroup under wslab/ (CgroupRoot); empty:
	// none.
	Cgroup string
}

// State is what is in force in a process, for /stats and the logs.
type State struct {
	Mode        string   `json:"mode"`
	NoNewPrivs  bool     `json:"no_new_privs"`
	CapsDropped bool     `json:"caps_dropped"`
	LandlockABI int      `json:"landlock_abi"` // 0: no Landlock ruleset
	Seccomp     bool     `json:"seccomp"`
	Rlimits     []string `json:"rlimits,omitempty"`
	Cgroup      string   `json:"cgroup,omitempty"` // the cgroup joined, and its controllers
	Missing     []string `json:"missing,omitempty"`
}

// String is the state in one line, as a log line or /stats shows it.
func (s State) String() string {
	parts := []string{"mode=" + s.Mode}
	if s.Mode == None {
		return parts[0]
	}
	parts = append(parts, fmt.Sprintf("no_new_privs=%t caps_dropped=%t landlock_abi=%d seccomp=%t",
		s.NoNewPrivs, s.CapsDropped, s.LandlockABI, s.Seccomp))
	if len(s.Rlimits) > 0 {
		parts = append(parts, "rlimits="+strings.Join(s.Rlimits, ","))
	}
	if s.Cgroup != "" {
		parts = append(parts, "cgroup="+s.Cgroup)
	}
	if len(s.Missing) > 0 {
		parts = append(parts, "missing="+strings.Join(s.Missing, ","))
	}
	return strings.Join(parts, " ")
}

// minLandlockABI is the oldest Landlock strict takes: the first that
// restricts TCP connect and bind.
const minLandlockABI = 4

// Denied is err as a confined task's error: a permission error, which
// only the sandbox causes there (the task set touches nothing else),
// becomes sandbox_denied naming the mechanism that refused it (Landlock
// answers EACCES, the seccomp filter EPERM); any other error is err.
func Denied(err error) error {
	var why string
	switch {
	case errors.Is(err, syscall.EACCES):
		why = "Landlock"
	case errors.Is(err, syscall.EPERM):
		why = "seccomp"
	default:
		return err
	}
	return taskproto.Errorf(taskproto.CodeSandboxDenied, "%v (refused by %s)", err, why)
}

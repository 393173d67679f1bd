//go:build !unix

package supervise

import (
	"os/exec"
	"syscall"
)

// Prepare does nothing here: no process groups, no parent-death signal.
// Children watch their parent instead (plugin.ExitWithParent).
func Prepare(*exec.Cmd, bool) {}

// KillGroup does nothing here; Kill ends the process itself.
func KillGroup(*exec.Cmd) {}

// SignalGroup signals the process itself: there are no groups here.
func SignalGroup(cmd *exec.Cmd, sig syscall.Signal) error { return cmd.Process.Signal(sig) }

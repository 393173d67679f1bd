//go:build !unix

package supervise

import (
	"os/exec"
	"syscall"
)

// Prepare does nothing here: no process groups, no parent-death signal.
// Children watch their parent instead (plugin.ExitWithParent).
func Prepare(*exec.Cmd, bool) {}

// signalGroup sends nothing here: there are no groups, so KillGroup does
// nothing (Kill ends the process itself) and SignalGroup signals the
// process alone.
func signalGroup(*exec.Cmd, syscall.Signal) (sent bool) { return false }

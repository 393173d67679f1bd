package supervise

import (
	"os/exec"
	"syscall"
)

// KillGroup kills the process group cmd's process leads, if it leads one:
// killing a process alone leaves what it started running (go-plugin #136).
// Without a group it does nothing: the caller kills the process itself.
func KillGroup(cmd *exec.Cmd) { signalGroup(cmd, syscall.SIGKILL) }

// SignalGroup sends sig to the process group cmd's process leads, or to
// the process alone when it leads none (or its group is gone).
func SignalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if signalGroup(cmd, sig) {
		return nil
	}
	return cmd.Process.Signal(sig)
}

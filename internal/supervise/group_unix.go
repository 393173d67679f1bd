//go:build unix

package supervise

import (
	"os"
	"os/exec"
	"syscall"
)

// KillGroup kills the process group cmd's process leads, if it leads one:
// killing a process alone leaves what it started running (go-plugin #136).
func KillGroup(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.SysProcAttr == nil || !cmd.SysProcAttr.Setpgid {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// SignalGroup sends sig to the process group cmd's process leads, or to
// the process alone when it leads none.
func SignalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.SysProcAttr == nil || !cmd.SysProcAttr.Setpgid {
		return cmd.Process.Signal(sig)
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		return os.NewSyscallError("kill", err)
	}
	return nil
}

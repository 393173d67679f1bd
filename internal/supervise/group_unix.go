//go:build unix

package supervise

import (
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

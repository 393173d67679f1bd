//go:build unix

package supervise

import (
	"os/exec"
	"syscall"
)

// signalGroup sends sig to the process group cmd's process leads, and says
// whether it did: not when the process leads no group (or was not
// started), nor when nothing of the group is left.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) (sent bool) {
	if cmd.Process == nil || cmd.SysProcAttr == nil || !cmd.SysProcAttr.Setpgid {
		return false
	}
	return syscall.Kill(-cmd.Process.Pid, sig) == nil
}

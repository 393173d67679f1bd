//go:build unix && !linux

package supervise

import (
	"os/exec"
	"syscall"
)

// Prepare puts cmd's process in a process group of its own if group. These
// systems have no parent-death signal: children watch their parent
// instead (plugin.ExitWithParent), and end with their data channel.
func Prepare(cmd *exec.Cmd, group bool) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = group
}

package supervise

import (
	"os/exec"
	"syscall"
)

// Prepare asks the kernel to SIGKILL cmd's process when this one dies and,
// if group, puts it in a process group of its own: a signal sent to this
// process's group (Ctrl-C in a terminal, `timeout`, a service manager) then
// reaches this process alone, which stops its children in order.
func Prepare(cmd *exec.Cmd, group bool) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr.Setpgid = group
}

package host

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal asks the kernel to SIGKILL the plugin when the host
// goes away. It fires when the forking thread exits, which the Go runtime
// does not do for unlocked threads; the plugin's own parent watch covers the
// rest (taskproto.ExitWithParent).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

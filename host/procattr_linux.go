package host

import (
	"os/exec"
	"syscall"
)

// setPluginProcAttr starts the plugin in a process group of its own, so a
// signal sent to the host's group (Ctrl-C in a terminal, `timeout`, a
// service manager) reaches the host alone, which then stops the plugin in
// order; and asks the kernel to SIGKILL the plugin when the host goes away.
// Pdeathsig fires when the forking thread exits, which the Go runtime does
// not do for unlocked threads; the plugin's own parent watch covers the rest
// (taskproto.ExitWithParent).
func setPluginProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killProcessGroup kills whatever is left in the plugin's process group:
// go-plugin's Kill stops only the plugin itself, not processes it started.
func killProcessGroup(pid int) {
	if pid > 0 {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

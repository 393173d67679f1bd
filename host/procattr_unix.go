//go:build unix

package host

import "syscall"

// killGroup kills whatever is left in the plugin's process group.
func killGroup(pid int) {
	if pid > 0 {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

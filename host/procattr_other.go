//go:build !linux

package host

import "os/exec"

func setPluginProcAttr(*exec.Cmd) {}

func killProcessGroup(int) {}

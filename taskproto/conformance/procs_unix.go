//go:build unix

package conformance

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// alive reports whether process pid exists and has not exited (a zombie
// waiting for its parent has).
func alive(pid int) bool {
	if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return syscall.Kill(pid, 0) == nil && !procMounted()
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// groupMembers lists the live processes of process group pgid; nil where
// there is no /proc to read it from.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // state, ppid, pgrp, ...
		if len(f) > 2 && f[0] != "Z" && f[0] != "X" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func killProcess(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

package supervise

import (
	"os"
	"strconv"
	"strings"
)

// Alive reports whether process pid exists and has not exited: a zombie
// waiting for its parent to reap it has.
func Alive(pid int) bool {
	f, ok := statFields(strconv.Itoa(pid))
	return ok && f[0] != "Z" && f[0] != "X"
}

// GroupMembers lists the live processes of process group pgid: what a
// killed group leaves behind, or what an exited leader's children still
// hold.
func GroupMembers(pgid int) []int {
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
		if f, ok := statFields(e.Name()); ok && len(f) > 2 && f[0] != "Z" && f[0] != "X" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// statFields are the fields of /proc/PID/stat after the command name in
// parentheses: state, ppid, pgrp, ...
func statFields(pid string) ([]string, bool) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(s[i+1:])
	return f, len(f) > 0
}

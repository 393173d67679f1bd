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
	return ok && live(f)
}

// GroupMembers lists the live processes of process group pgid: what a
// killed group leaves behind, or what an exited leader's children still
// hold.
func GroupMembers(pgid int) []int { return liveWith(statPgrp, pgid) }

// Children lists the live processes whose parent is pid.
func Children(pid int) []int { return liveWith(statPPID, pid) }

// The fields of /proc/PID/stat, as statFields numbers them.
const (
	statState = iota
	statPPID
	statPgrp
)

// liveWith lists the live processes whose stat field is value.
func liveWith(field, value int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := strconv.Itoa(value)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, ok := statFields(e.Name()); ok && len(f) > field && live(f) && f[field] == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// live says whether the process of stat fields f has not exited (is
// neither a zombie nor dead).
func live(f []string) bool { return f[statState] != "Z" && f[statState] != "X" }

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

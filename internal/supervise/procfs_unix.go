//go:build unix && !linux

package supervise

import "syscall"

// Alive reports whether process pid exists (a zombie counts: there is no
// /proc here to tell).
func Alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// GroupMembers is nil here: there is no /proc to list a group from.
func GroupMembers(int) []int { return nil }

// Children is nil here: there is no /proc to list them from.
func Children(int) []int { return nil }

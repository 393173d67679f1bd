//go:build !unix

package supervise

import "os"

// Alive reports whether process pid exists.
func Alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}

// GroupMembers is nil here: process groups are a Unix idea.
func GroupMembers(int) []int { return nil }

// Children is nil here: nothing lists them.
func Children(int) []int { return nil }

//go:build !unix

package conformance

import (
	"errors"
	"os"
)

// alive reports whether process pid exists.
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}

// groupMembers: process groups are a Unix idea; nothing is checked here.
func groupMembers(int) []int { return nil }

func killProcess(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return errors.Join(errors.New("find plugin process"), err)
	}
	return p.Kill()
}

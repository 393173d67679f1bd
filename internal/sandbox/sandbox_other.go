//go:build !linux

package sandbox

import "errors"

// Check says which mechanisms strict needs that this system lacks: all of
// them, off Linux.
func Check() []string { return []string{"Landlock, seccomp and cgroups (Linux only)"} }

// Probe is what strict puts in force here: nothing.
func Probe(p Policy) State {
	return State{Mode: p.Mode, Missing: Check()}
}

// Apply confines nothing off Linux: strict fails, best-effort says so.
func Apply(p Policy) (State, error) {
	st := State{Mode: p.Mode}
	switch p.Mode {
	case None, "":
		st.Mode = None
		return st, nil
	case Strict:
		return st, errors.New("sandbox: strict needs Linux")
	}
	st.Missing = Check()
	return st, nil
}

// CgroupBases are none off Linux.
func CgroupBases() []string { return nil }

// CgroupNames are none off Linux.
func CgroupNames(string) []string { return nil }

// RemoveCgroups does nothing off Linux.
func RemoveCgroups(string) {}

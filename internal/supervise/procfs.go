package supervise

import "time"

// What this package tells of other processes: Alive, GroupMembers and
// Children are the system's (procfs_linux.go reads /proc, procfs_unix.go
// has signals only, procfs_other.go next to nothing); WaitGone is built on
// Alive.

// WaitGone waits up to limit for process pid to be gone (where Alive can
// tell, a zombie is), and says whether it is.
func WaitGone(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if !Alive(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

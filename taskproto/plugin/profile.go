package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// ProfileEnv names the variable that turns on CPU profiles of a wslab
// process's whole life: set it to a directory and each process (host,
// plugin, worker) writes DIR/NAME-PID.pprof when it exits cleanly. Plugins
// and their workers inherit it from the host.
const ProfileEnv = "WSLAB_CPUPROFILE"

// StartProfile starts the CPU profile of the process named name when
// ProfileEnv is set; stop writes it out. Serve calls it for a plugin.
func StartProfile(name string) (stop func()) {
	dir := os.Getenv(ProfileEnv)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", name, os.Getpid())))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		fmt.Fprintf(os.Stderr, "%s: %v\n", ProfileEnv, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

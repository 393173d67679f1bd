// Package profile lets every wslab process (host, plugin, worker) write a
// CPU profile of its whole life, for docs/performance.md: set
// WSLAB_CPUPROFILE to a directory and each process writes
// DIR/NAME-PID.pprof when it exits cleanly. Plugins and workers inherit the
// variable from the host.
package profile

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// Env names the variable that turns profiling on.
const Env = "WSLAB_CPUPROFILE"

// Start starts the CPU profile when Env is set; stop writes it out.
func Start(name string) (stop func()) {
	dir := os.Getenv(Env)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", name, os.Getpid())))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", Env, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		fmt.Fprintf(os.Stderr, "%s: %v\n", Env, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

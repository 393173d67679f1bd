//go:build linux

package multiproc

import "testing"

func TestDataMapped(t *testing.T) {
	// A Go process has its first heap arena and the runtime's metadata
	// mapped before main runs.
	if n := dataMapped(); n < 1<<20 {
		t.Fatalf("dataMapped = %d, want the process's VmData", n)
	}
}

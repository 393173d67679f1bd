//go:build wasip1 && wasmtest

package main

import "os"

// Exports for internal/wasm's tests only, built with -tags wasmtest: never
// in the module `make build` ships.

var hoard [][]byte

// wslab_test_alloc_mb keeps n MiB allocated, to run past a memory cap.
//
//go:wasmexport wslab_test_alloc_mb
func testAllocMB(n int32) int32 {
	for range n {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 1 // touched, so that nothing is left unbacked
		}
		hoard = append(hoard, b)
	}
	return int32(len(hoard))
}

// wslab_test_create creates the file named by the kind the host wrote
// (wslab_input), and returns 0 when it could, 1 when it could not: the
// tests try paths outside the data directory.
//
//go:wasmexport wslab_test_create
func testCreate() int32 {
	f, err := os.Create(string(kind))
	if err != nil {
		return 1
	}
	f.Close()
	return 0
}

//go:build !unix

package multiproc

import "runtime/debug"

// limitMemory sets the collector's soft limit; there is no hard limit here.
func limitMemory(bytes int64) error {
	debug.SetMemoryLimit(bytes * 9 / 10)
	return nil
}

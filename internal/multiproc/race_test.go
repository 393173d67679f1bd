//go:build race

package multiproc

// raceEnabled: the race detector's allocator, not Go's, runs out first
// under a memory cap, and ends the worker its own way (exit 66).
const raceEnabled = true

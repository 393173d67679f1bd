//go:build !race

package multiproc

const raceEnabled = false

//go:build unix

package taskproto_test

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wslab/wslab/taskproto"
)

// Monotonic is CLOCK_MONOTONIC as another process reads it.
func TestMonotonicIsTheKernelClock(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("CLOCK_MONOTONIC is Go's own clock on Linux only")
	}
	for range 100 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		ours := taskproto.Monotonic()
		if d := ours - ts.Nano(); d < 0 || d > int64(50*time.Millisecond) {
			t.Fatalf("Monotonic %d is %d ns from CLOCK_MONOTONIC read just before it", ours, d)
		}
	}
}

//go:build !unix

package taskproto

import (
	"sync"
	"time"
)

// Without CLOCK_MONOTONIC the stamps share this process's clock only.
var (
	clockOnce sync.Once
	clockBase time.Time
)

func monoAt(t time.Time) int64 {
	clockOnce.Do(func() { clockBase = time.Now() })
	return 1 + t.Sub(clockBase).Nanoseconds()
}

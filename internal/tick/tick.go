// Package tick runs periodic work until its owner's context ends.
package tick

import (
	"context"
	"time"
)

// Every calls f every d until ctx is done; it returns then. The first call
// comes after d, not at once.
func Every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

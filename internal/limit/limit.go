// Package limit is an adaptive concurrency limit: how many tasks to let
// into something at once, found by watching how long they wait there. It
// grows while tasks wait less than a target and shrinks when they wait
// longer: additive increase, multiplicative decrease (AIMD), as TCP's
// congestion window does and the AIMD limiter of Netflix's
// concurrency-limits library does for services, with a slow start that
// doubles the limit until the first decrease.
//
// The host sizes the window of tasks it hands a strategy with one, and the
// adaptive strategy bounds what it runs with another.
package limit

import (
	"sync"
	"time"
)

// Backoff is the factor a decrease multiplies the limit by.
const Backoff = 0.9

// AIMD is an adaptive limit. Its zero value is not usable; see New.
type AIMD struct {
	mu       sync.Mutex
	min, max float64
	cur      float64
	target   time.Duration
	slow     bool // in slow start: +1 per completion instead of +1/limit
	since    int  // completions since the last decrease
}

// New returns a limit between min and max (both at least 1) that starts
// at initial and aims for waits of at most target.
func New(min, initial, max int, target time.Duration) *AIMD {
	min = max1(min)
	hi := max1(max)
	if hi < min {
		hi = min
	}
	initial = clamp(initial, min, hi)
	return &AIMD{min: float64(min), max: float64(hi), cur: float64(initial), target: target, slow: true}
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

func clamp(n, lo, hi int) int {
	if n < lo {
		return lo
	}
	if n > hi {
		return hi
	}
	return n
}

// Limit is the current limit.
func (a *AIMD) Limit() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.cur)
}

// Observe records one task's end: wait is how long it waited before it
// ran; saturated says the limit was fully used while it was out, which is
// the only time more room could have helped. A wait over the target
// shrinks the limit, at most once per limit's worth of tasks, so that one
// burst is one decrease.
func (a *AIMD) Observe(wait time.Duration, saturated bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.since++
	switch {
	case wait > a.target:
		if a.since >= int(a.cur) {
			a.cur = max(a.min, a.cur*Backoff)
			a.slow = false
			a.since = 0
		}
	case saturated:
		if a.slow {
			a.cur++
		} else {
			a.cur += 1 / a.cur
		}
		a.cur = min(a.cur, a.max)
	}
}

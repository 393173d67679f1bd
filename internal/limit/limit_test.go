package limit

import (
	"testing"
	"time"
)

func TestBounds(t *testing.T) {
	a := New(0, 50, 10, time.Millisecond)
	if a.Limit() != 10 {
		t.Errorf("initial above max: limit %d, want 10", a.Limit())
	}
	a = New(4, 1, 100, time.Millisecond)
	if a.Limit() != 4 {
		t.Errorf("initial below min: limit %d, want 4", a.Limit())
	}
}

// Tasks that wait little grow a saturated limit (doubling per limit's
// worth of tasks at first), up to max; without saturation nothing grows.
func TestGrowth(t *testing.T) {
	a := New(2, 10, 256, time.Millisecond)
	for range 100 {
		a.Observe(0, false)
	}
	if a.Limit() != 10 {
		t.Fatalf("unsaturated: limit %d, want 10", a.Limit())
	}
	for range 10 {
		a.Observe(0, true)
	}
	if a.Limit() != 20 {
		t.Fatalf("after a slow-start round: %d, want 20", a.Limit())
	}
	for range 1000 {
		a.Observe(0, true)
	}
	if a.Limit() != 256 {
		t.Fatalf("limit %d, want max 256", a.Limit())
	}
}

// Waits over the target shrink the limit by Backoff, once per limit's
// worth of tasks, down to min; growth after a decrease is additive.
func TestShrink(t *testing.T) {
	a := New(4, 100, 256, time.Millisecond)
	for range 100 {
		a.Observe(5*time.Millisecond, true)
	}
	if a.Limit() != 90 {
		t.Fatalf("one burst of long waits: limit %d, want 90 (one decrease)", a.Limit())
	}
	for range 10000 {
		a.Observe(5*time.Millisecond, true)
	}
	if a.Limit() != 4 {
		t.Fatalf("limit %d, want min 4", a.Limit())
	}
	for range 4 {
		a.Observe(0, true)
	}
	if a.Limit() != 4 { // +1/4 each: 5 only after four
		t.Logf("limit %d", a.Limit())
	}
	for range 20 {
		a.Observe(0, true)
	}
	if l := a.Limit(); l < 5 || l > 9 {
		t.Errorf("after additive growth: %d, want a few above 4", l)
	}
}

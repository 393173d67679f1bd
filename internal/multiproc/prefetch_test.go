package multiproc

import (
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// A busy worker is sent a task ahead only while what it holds is known to
// end soon: after noops, yes; behind a long sleep or a kind not yet seen,
// no.
func TestPrefetchOnlyBehindShortWork(t *testing.T) {
	noop := taskproto.Task{Kind: taskproto.KindNoop}
	fib := taskproto.Task{Kind: taskproto.KindFib, N: 30}
	var rc runCosts
	w := &workerHandle{inflight: map[uint64]*call{1: {task: noop}}}
	if rc.shortAhead(w, noop) {
		t.Error("sent ahead before any noop's cost is known")
	}
	rc.observe(noop, 3*time.Microsecond)
	if !rc.shortAhead(w, noop) {
		t.Error("not sent ahead behind a noop")
	}
	if rc.shortAhead(w, fib) {
		t.Error("a fib, never seen, sent ahead")
	}
	w.inflight[2] = &call{task: taskproto.Task{Kind: taskproto.KindSleep, N: 1000}}
	if rc.shortAhead(w, noop) {
		t.Error("sent ahead behind a 1 s sleep")
	}
	delete(w.inflight, 2)
	rc.observe(fib, 100*time.Millisecond) // fib 30 takes 100 ms: fib 3 about 1 ms
	w.inflight[3] = &call{task: fib}
	if rc.shortAhead(w, noop) {
		t.Error("sent ahead behind a 100 ms fib")
	}
	w.inflight[3] = &call{task: taskproto.Task{Kind: taskproto.KindFib, N: 3}}
	if d, _ := rc.estimate(w.inflight[3].task); d != time.Millisecond {
		t.Errorf("fib 3 estimated at %v, want 1ms (cost ∝ n²)", d)
	}
	if !rc.shortAhead(w, noop) {
		t.Error("not sent ahead behind a 1 ms fib")
	}
}

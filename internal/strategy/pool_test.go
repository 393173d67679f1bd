package strategy

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// newPool starts a pool and closes it when the test ends (checking that
// Close returns).
func newPool(t *testing.T, workers, queue int64) *Pool {
	t.Helper()
	p, err := NewPool(taskproto.Config{Settings: poolSettings(workers, queue)})
	if err != nil {
		t.Fatalf("NewPool(%d, %d): %v", workers, queue, err)
	}
	t.Cleanup(func() { closePool(t, p) })
	return p
}

func closePool(t *testing.T, p *Pool) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(hangGuard):
		t.Errorf("Close did not return within %v", hangGuard)
	}
}

func TestNewPoolConfig(t *testing.T) {
	for _, c := range []struct{ workers, queue int64 }{{1, 0}, {1, -1}, {-1, 1}, {-1, 0}, {0, 0}} {
		if p, err := NewPool(taskproto.Config{Settings: poolSettings(c.workers, c.queue)}); err == nil || p != nil {
			t.Errorf("NewPool(workers %d, queue %d) = %v, %v; want nil and an error", c.workers, c.queue, p, err)
			if p != nil {
				p.Close()
			}
		}
	}

	before := poolWorkers()
	p := newPool(t, 0, 1)
	ncpu := runtime.NumCPU()
	if p.workers != ncpu {
		t.Errorf("workers %d, want runtime.NumCPU() = %d", p.workers, ncpu)
	}
	if info := p.Info(); info.Name != "pool" || info.Concurrency != ncpu || info.PID != os.Getpid() {
		t.Errorf("Info %+v: want pool, concurrency %d", info, ncpu)
	}
	if st := statsOf(t, p); st.Capacity != int64(ncpu) {
		t.Errorf("Capacity %d, want %d", st.Capacity, ncpu)
	}
	waitFor(t, "the pool's goroutines to start", func() bool { return poolWorkers() == before+ncpu })

	p3 := newPool(t, 3, 5)
	if info := p3.Info(); info.Concurrency != 3 {
		t.Errorf("Info %+v: want concurrency 3", info)
	}
	if st := statsOf(t, p3); st.Capacity != 3 {
		t.Errorf("Capacity %d, want 3", st.Capacity)
	}
	if p3.limit != 5 {
		t.Errorf("queue limit %d, want 5", p3.limit)
	}
}

// Close stops every goroutine of the pool, after the task it is running.
func TestPoolClose(t *testing.T) {
	before := poolWorkers()
	p, err := NewPool(taskproto.Config{Settings: poolSettings(3, 1)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3 goroutines to start", func() bool { return poolWorkers() == before+3 })

	gate := newGate(t)
	running := execAsync(p, gate, cpuOne)
	gate.waitStarted(t, "task")
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	gate.open()
	if o := await(t, running, "task running during Close"); o.err != nil || o.res.Value != "0" {
		t.Errorf("task running during Close: %+v, %v", o.res, o.err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("Close did not return within %v", hangGuard)
	}
	waitFor(t, "the goroutines to stop", func() bool { return poolWorkers() == before })
}

// Two blocked workers and a full queue: the next task is refused at once;
// once the workers are freed, the queue drains.
func TestPoolOverloaded(t *testing.T) {
	p := newPool(t, 2, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var blockers []<-chan outcome
	for range 2 {
		blockers = append(blockers, execAsync(p, ctx, longNap))
	}
	waitStats(t, p, "both workers to be busy", func(st taskproto.Stats) bool { return st.Running == 2 })

	var queued []<-chan outcome
	for range 3 {
		queued = append(queued, execAsync(p, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 1}))
	}
	waitFor(t, "the queue to fill", func() bool { return p.queue.Len() == 3 })
	if st := statsOf(t, p); st.Running != 2 || st.Queued != 3 || st.Capacity != 2 {
		t.Errorf("stats with a full queue %+v: want 2 running, 3 queued, capacity 2", st)
	}

	// The workers stay blocked until cancel, so a return here is a refusal.
	for i := range 2 {
		o := await(t, execAsync(p, context.Background(), noop), "task beyond the queue")
		te, ok := o.err.(*taskproto.Error)
		if !ok || te.Code != taskproto.CodeOverloaded {
			t.Fatalf("task beyond the queue: err %#v, want *taskproto.Error with code overloaded", o.err)
		}
		if st := statsOf(t, p); st.Failed != int64(i+1) || st.Queued != 3 {
			t.Errorf("stats after %d refusals %+v", i+1, st)
		}
	}

	cancel()
	for i, ch := range blockers {
		if o := await(t, ch, "blocker"); !errors.Is(o.err, context.Canceled) {
			t.Errorf("blocker %d: err %v, want context.Canceled", i, o.err)
		}
	}
	for i, ch := range queued {
		o := await(t, ch, "queued task")
		if o.err != nil || o.res.Value != "Request done" {
			t.Errorf("queued task %d: %+v, %v", i, o.res, o.err)
		}
		if o.res.Worker != "g0" && o.res.Worker != "g1" {
			t.Errorf("queued task %d: worker %q", i, o.res.Worker)
		}
		if o.res.Queue <= 0 {
			t.Errorf("queued task %d: Queue %v, want > 0", i, o.res.Queue)
		}
	}
	// 2 refused + 2 cancelled blockers failed; the 3 queued tasks completed.
	waitStats(t, p, "the pool to drain", func(st taskproto.Stats) bool {
		return st.Running == 0 && st.Queued == 0 && st.Completed == 3 && st.Failed == 4
	})
	if o := await(t, execAsync(p, context.Background(), noop), "task after the drain"); o.err != nil {
		t.Errorf("task after the drain: %v", o.err)
	}
}

// A queued task whose caller gives up is answered at once and dropped from
// the queue, while the only worker is still busy: it never reaches a
// worker. noop ignores its context, so had it run it would count as
// completed.
func TestPoolCancelledQueuedTaskIsDropped(t *testing.T) {
	p := newPool(t, 1, 2)
	gate := newGate(t)
	blocker := execAsync(p, gate, cpuOne)
	gate.waitStarted(t, "blocker")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiting := execAsync(p, ctx, noop)
	waitFor(t, "the task to queue", func() bool { return p.queue.Len() == 1 })
	cancel()
	// The only worker is held by the blocker, so this returns on the cancel.
	o := await(t, waiting, "cancelled queued task")
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled queued task: err %v, want context.Canceled", o.err)
	}
	if n := p.queue.Len(); n != 0 {
		t.Errorf("queue holds %d tasks after the cancel, want 0: a cancelled task must leave the queue", n)
	}
	if st := statsOf(t, p); st.Queued != 0 || st.Failed != 1 {
		t.Errorf("stats after the cancel %+v: want nothing queued, 1 failed", st)
	}

	gate.open()
	if o := await(t, blocker, "blocker"); o.err != nil || o.res.Value != "0" {
		t.Fatalf("blocker: %+v, %v", o.res, o.err)
	}
	st := waitStats(t, p, "the blocker to be counted", func(st taskproto.Stats) bool {
		return st.Completed+st.Failed == 2 && st.Queued == 0 && st.Running == 0
	})
	if st.Completed != 1 || st.Failed != 1 {
		t.Errorf("stats %+v: want the blocker completed and the cancelled task failed, not run", st)
	}
	// The worker is still there.
	if o := await(t, execAsync(p, context.Background(), noop), "task after the skip"); o.err != nil || o.res.Worker != "g0" {
		t.Errorf("task after the skip: %+v, %v", o.res, o.err)
	}
}

// Each goroutine of the pool reports its own name.
func TestPoolWorkerNames(t *testing.T) {
	p := newPool(t, 2, 1)
	gates := []*gateCtx{newGate(t), newGate(t)}
	var chans []<-chan outcome
	for _, g := range gates {
		chans = append(chans, execAsync(p, g, cpuOne))
	}
	// Both held at once: each is on its own goroutine.
	for _, g := range gates {
		g.waitStarted(t, "task")
	}
	for _, g := range gates {
		g.open()
	}
	seen := map[string]bool{}
	for _, ch := range chans {
		o := await(t, ch, "task")
		if o.err != nil || o.res.Value != "0" {
			t.Errorf("task: %+v, %v", o.res, o.err)
		}
		seen[o.res.Worker] = true
	}
	if len(seen) != 2 || !seen["g0"] || !seen["g1"] {
		t.Errorf("workers %v, want g0 and g1", seen)
	}
}

func TestPoolCounters(t *testing.T) {
	p := newPool(t, 2, 4)
	for range 3 {
		if _, err := taskproto.Run(context.Background(), p, noop); err != nil {
			t.Fatal(err)
		}
	}
	_, err := taskproto.Run(context.Background(), p, taskproto.Task{Kind: "nope"})
	var te *taskproto.Error
	if !errors.As(err, &te) || te.Code != taskproto.CodeUnknownTask {
		t.Fatalf("err %v, want unknown_task", err)
	}
	if st := statsOf(t, p); st.Completed != 3 || st.Failed != 1 || st.Running != 0 || st.Queued != 0 {
		t.Errorf("stats %+v: want 3 completed, 1 failed", st)
	}
}

// After Close, a task queued at Close or submitted after it is answered
// at once instead of waiting for a worker that will never come.
func TestPoolExecuteAfterCloseReturns(t *testing.T) {
	p, err := NewPool(taskproto.Config{Settings: poolSettings(1, 4)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	ch := execAsync(p, context.Background(), noop)
	select {
	case o := <-ch:
		var te *taskproto.Error
		if !errors.As(o.err, &te) || te.Code != taskproto.CodeShuttingDown {
			t.Errorf("Execute after Close: %+v, %v; want shutting_down", o.res, o.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("Execute after Close has not returned after 3s: the job sits in a queue no goroutine reads (Stats %+v)", statsOf(t, p))
	}
}

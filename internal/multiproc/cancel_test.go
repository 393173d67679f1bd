//go:build unix

package multiproc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/faults"
	"github.com/wslab/wslab/taskproto"
)

// hookCtx is a cancellable context whose first Deadline call, which the
// executor makes while it writes the task to its worker (under its lock),
// runs a hook.
type hookCtx struct {
	context.Context
	once sync.Once
	hook func()
}

func (h *hookCtx) Deadline() (time.Time, bool) {
	h.once.Do(h.hook)
	return h.Context.Deadline()
}

// TestCancelNeverOvertakesTask: a queued call is given to a worker when a
// slot frees; if its context ends just as its task is being written, its
// cancel must reach the worker after the task (a worker ignores a cancel
// for a task it does not have, and would then run the abandoned task to
// its end). It happens in practice when a connection that goes away
// cancels its running and its queued tasks at once. An abandoned task
// also keeps its worker's slot until the worker has stopped it.
func TestCancelNeverOvertakesTask(t *testing.T) {
	e := newExecutor(t, func(o *Options) { o.Processes = 1 })

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	waitA := submit(e, ctxA, taskproto.Task{Kind: taskproto.KindSleep, N: 10_000})

	baseB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	// B is being written to w0 when its context ends.
	ctxB := &hookCtx{Context: baseB, hook: cancelB}
	waitB := submit(e, ctxB, taskproto.Task{Kind: taskproto.KindSleep, N: 4000})
	if st := stats(t, e); st.Queued != 1 || st.Running != 1 {
		t.Fatalf("stats %+v: want A running, B queued", st)
	}

	cancelA() // A's slot frees once w0 stops it; B is written to w0, and cancelled
	if o := await(t, waitA, prompt); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("A: %v", o.err)
	}
	if o := await(t, waitB, prompt); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("B: %v, want context.Canceled", o.err)
	}
	// w0 stops B as soon as its cancel arrives, after B: its slot frees
	// long before B's 4 s sleep would end.
	st := waitStats(t, e, 2*time.Second, "w0 to stop the cancelled task B", func(st taskproto.Stats) bool {
		return st.Running == 0 && st.Queued == 0 && st.Workers[0].State == "idle"
	})
	if st.Restarts != 0 {
		t.Errorf("stats %+v: w0 was replaced; it should have stopped B itself", st)
	}
	o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, hangMax)
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.elapsed > 2*time.Second {
		t.Errorf("noop on an idle worker took %v (worker queue %v)", o.elapsed.Round(time.Millisecond), o.res.Queue.Round(time.Millisecond))
	}
}

// TestOverrunWorkerReplaced: a task that ignores its cancel keeps its
// worker's slot, and after OverrunGrace the worker is killed and replaced;
// the task was answered at once, and no other task waits behind it.
func TestOverrunWorkerReplaced(t *testing.T) {
	t.Setenv(faults.Env, "stall:cpu:7")
	e := newExecutor(t, func(o *Options) { o.Processes = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	wait := submit(e, ctx, taskproto.Task{Kind: taskproto.KindCPU, N: 7})
	waitStats(t, e, prompt, "the stalled task to run", func(st taskproto.Stats) bool { return st.Running == 1 })
	pid := stats(t, e).Workers[0].PID
	cancel()
	if o := await(t, wait, prompt); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("stalled task: %v, want context.Canceled at once", o.err)
	}
	if st := stats(t, e); st.Running != 1 {
		t.Errorf("stats %+v: the abandoned task should hold w0's slot until w0 is replaced", st)
	}
	st := waitStats(t, e, OverrunGrace+hangMax, "w0 to be replaced", func(st taskproto.Stats) bool {
		return st.Workers[0].Restarts == 1 && st.Workers[0].State == "idle" && st.Running == 0
	})
	if st.Workers[0].PID == pid {
		t.Errorf("w0 still has pid %d", pid)
	}
	waitGone(t, pid)
	if o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10}, prompt); o.err != nil || o.res.Value != "55" {
		t.Errorf("fib 10 after the replacement: %+v, %v", o.res, o.err)
	}
}

// TestWorkerQueueHoldsPrefetch: a worker's queue holds everything the
// plugin may send it (worker_inflight + worker_prefetch, here beyond the
// 1024 its queue once held), so its reader never blocks and still reads a
// cancel that comes after a thousand queued tasks.
func TestWorkerQueueHoldsPrefetch(t *testing.T) {
	const prefetch = 1100
	e := newExecutor(t, func(o *Options) { o.Processes, o.Prefetch, o.QueueSize = 1, prefetch, 8 })
	e.mu.Lock() // every task is sent ahead, however long the one before it
	e.costs.horizon = time.Hour
	e.costs.observe(taskproto.Task{Kind: taskproto.KindNoop}, 0)
	e.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	long := submit(e, ctx, taskproto.Task{Kind: taskproto.KindSleep, N: 60_000})
	var short []func() (taskproto.Result, error)
	for range prefetch {
		short = append(short, submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}))
	}
	waitStats(t, e, prompt, "every task with the worker", func(st taskproto.Stats) bool { return st.Running == prefetch+1 })
	cancel()
	if o := await(t, long, prompt); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("long task: %v", o.err)
	}
	for i, w := range short {
		if o := await(t, w, hangMax); o.err != nil {
			t.Fatalf("queued task %d: %v", i, o.err)
		}
	}
}

package multiproc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// hookCtx is a cancellable context whose first Deadline call, which
// worker.send makes after the call was assigned under Executor.mu and before
// its task frame is written, runs a hook: it opens the window between the
// two deterministically.
type hookCtx struct {
	context.Context
	once sync.Once
	hook func()
}

func (h *hookCtx) Deadline() (time.Time, bool) {
	h.once.Do(h.hook)
	return h.Context.Deadline()
}

// TestCancelNeverOvertakesTask: fillLocked assigns a queued call to a
// worker under Executor.mu, but its task frame is written only after the
// lock is released. If the call's context ends in between, its cancel must
// not reach the worker before the task (the worker would ignore the cancel,
// then run the abandoned task to its end while the plugin counts the slot
// free). abandon marks the call before writing the cancel, and send skips a
// marked call. It happens in practice when a connection that goes away
// cancels its running and its queued tasks at once.
func TestCancelNeverOvertakesTask(t *testing.T) {
	e := newExecutor(t, func(o *Options) { o.Processes = 1 })

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	waitA := e.Submit(ctxA, taskproto.Task{Kind: taskproto.KindSleep, N: 10_000})

	baseB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	bDone := make(chan error, 1)
	ctxB := &hookCtx{Context: baseB}
	ctxB.hook = func() {
		// B was just assigned to w0 and is about to be written: cancel it
		// and let its waiter's abandon (and cancel frame) run first.
		cancelB()
		select {
		case err := <-bDone:
			bDone <- err
		case <-time.After(2 * time.Second):
		}
	}
	waitB := e.Submit(ctxB, taskproto.Task{Kind: taskproto.KindSleep, N: 4000})
	go func() {
		_, err := waitB()
		bDone <- err
	}()
	if st := stats(t, e); st.Queued != 1 || st.Running != 1 {
		t.Fatalf("stats %+v: want A running, B queued", st)
	}

	cancelA() // A's abandon gives w0 to B, then sends it
	if o := await(t, waitA, prompt); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("A: %v", o.err)
	}
	select {
	case err := <-bDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("B: %v, want context.Canceled", err)
		}
	case <-time.After(prompt):
		t.Fatal("B did not return")
	}
	st := stats(t, e)
	if st.Running != 0 || st.Queued != 0 || st.Workers[0].State != "idle" {
		t.Fatalf("stats %+v: the plugin should see w0 idle", st)
	}

	// w0 is idle as far as the plugin knows: a noop must run at once, not
	// after the cancelled sleep 4000.
	o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, hangMax)
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.elapsed > 2*time.Second {
		t.Errorf("noop on an idle worker took %v (worker queue %v): the cancelled task B ran to its end on the worker, "+
			"its cancel frame having overtaken its task frame", o.elapsed.Round(time.Millisecond), o.res.Queue.Round(time.Millisecond))
	}
}

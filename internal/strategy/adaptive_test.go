package strategy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

func newAdaptive(t *testing.T, settings map[string]string) *Adaptive {
	t.Helper()
	s, err := taskproto.ApplyKeys(settings, AdaptiveKeys)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAdaptive(taskproto.Config{Settings: s, DataDir: t.TempDir(), LargeFileName: "large_file.txt"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func code(err error) taskproto.Code {
	var te *taskproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return ""
}

// With one slot busy, tasks wait; once the oldest has waited max_queue_ms,
// newcomers are shed with overloaded; the tasks it accepted all finish.
func TestShedsWhenTheQueueStands(t *testing.T) {
	a := newAdaptive(t, map[string]string{
		"adaptive.min_concurrency": "1", "adaptive.max_concurrency": "1", "adaptive.max_queue_ms": "20",
	})
	// Seconds of work, stopped by its context once the test has seen the queue.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	first := execAsync(a, ctx, taskproto.Task{Kind: taskproto.KindCPU, N: 4_000_000_000})
	second := execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10})
	time.Sleep(60 * time.Millisecond)
	if o := await(t, execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10}), "adaptive task"); code(o.err) != taskproto.CodeOverloaded {
		t.Errorf("a task behind a queue that has stood 60 ms: %+v, %v; want overloaded", o.res, o.err)
	}
	if o := await(t, execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 1}), "adaptive task"); o.err != nil {
		t.Errorf("a sleep takes no slot and is not shed: %v", o.err)
	}
	stop()
	if o := await(t, first, "first task"); !errors.Is(o.err, context.Canceled) {
		t.Errorf("the running task, cancelled: %v", o.err)
	}
	if o := await(t, second, "second task"); o.err != nil || o.res.Value != "55" || o.res.Queue <= 0 {
		t.Errorf("the waiting task: %+v, %v", o.res, o.err)
	}
}

// The limit grows while tasks run at their unloaded speed with every slot
// in use, and shrinks when they slow down past the tolerance.
func TestLimitFollowsSlowdown(t *testing.T) {
	a := newAdaptive(t, map[string]string{"adaptive.max_concurrency": "16"})
	task := taskproto.Task{Kind: taskproto.KindFib, N: 1000}
	for range 200 {
		a.limit.Observe(a.slowdown(task, 10*time.Millisecond), true)
	}
	if got := a.limit.Limit(); got != 16 {
		t.Fatalf("limit %d after fast saturated runs, want the maximum 16", got)
	}
	for range 200 {
		a.limit.Observe(a.slowdown(task, 30*time.Millisecond), true) // 3× its quickest
	}
	if got := a.limit.Limit(); got >= 8 {
		t.Errorf("limit %d after runs three times slower than unloaded, want it well below 16", got)
	}
	if d := a.slowdown(task, 14*time.Millisecond); d != 0 {
		t.Errorf("a run within 150 %% of the quickest is a slowdown of %v, want 0", d)
	}
}

// A waiting task whose context ends is answered at once; Close answers
// the rest with shutting_down.
func TestWaitingTasksEnd(t *testing.T) {
	a := newAdaptive(t, map[string]string{
		"adaptive.min_concurrency": "1", "adaptive.max_concurrency": "1", "adaptive.max_queue_ms": "60000",
	})
	ctx, cancel := context.WithCancel(context.Background())
	running := execAsync(a, ctx, taskproto.Task{Kind: taskproto.KindCPU, N: 1_000_000_000})
	waitCtx, stop := context.WithCancel(context.Background())
	waiting := execAsync(a, waitCtx, taskproto.Task{Kind: taskproto.KindFib, N: 10})
	stop()
	if o := await(t, waiting, "waiting task"); !errors.Is(o.err, context.Canceled) {
		t.Errorf("cancelled waiting task: %v, want context.Canceled", o.err)
	}
	last := execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10})
	cancel() // stops the running cpu task
	if o := await(t, running, "running task"); o.err == nil {
		t.Error("the cancelled cpu task succeeded")
	}
	if o := await(t, last, "last task"); o.err != nil && code(o.err) != taskproto.CodeShuttingDown {
		t.Errorf("the last task: %v", o.err)
	}
	a.Close()
	if o := await(t, execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}), "adaptive task"); code(o.err) != taskproto.CodeShuttingDown {
		t.Errorf("after Close: %v, want shutting_down", o.err)
	}
}

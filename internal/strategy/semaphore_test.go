package strategy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

func newSemaphore(t *testing.T, k int64) *Semaphore {
	t.Helper()
	s, err := NewSemaphore(taskproto.Config{Settings: semaphoreSettings(k)})
	if err != nil {
		t.Fatalf("NewSemaphore(%d): %v", k, err)
	}
	return s
}

func TestNewSemaphoreRejectsLimitBelowOne(t *testing.T) {
	for _, k := range []int64{0, -1, -100} {
		if s, err := NewSemaphore(taskproto.Config{Settings: semaphoreSettings(k)}); err == nil || s != nil {
			t.Errorf("NewSemaphore(%d) = %v, %v; want nil and an error", k, s, err)
		}
	}
	s := newSemaphore(t, 1)
	if info := s.Info(); info.Name != "semaphore" || info.Concurrency != 1 || info.PID == 0 {
		t.Errorf("Info %+v", info)
	}
}

// With K=3, ten sleep tasks run three at a time while seven wait.
func TestSemaphoreLimitsConcurrency(t *testing.T) {
	const k, n = 3, 10
	s := newSemaphore(t, k)
	results := make(chan outcome, n)
	for range n {
		go func() {
			res, err := taskproto.Run(context.Background(), s, taskproto.Task{Kind: taskproto.KindSleep, N: 200})
			results <- outcome{res, err}
		}()
	}

	sawFull, overLimit := false, false
	var maxRunning, maxQueued int64
	deadline := time.Now().Add(hangGuard)
	for {
		st := statsOf(t, s)
		maxRunning = max(maxRunning, st.Running)
		maxQueued = max(maxQueued, st.Queued)
		if st.Running > k && !overLimit {
			overLimit = true
			t.Errorf("Running = %d > limit %d (stats %+v)", st.Running, k, st)
		}
		if st.Capacity != k {
			t.Fatalf("Capacity = %d, want %d", st.Capacity, k)
		}
		if st.Running == k && st.Queued == n-k {
			sawFull = true
		}
		if st.Completed+st.Failed == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks not done after %v: %+v", hangGuard, st)
		}
		time.Sleep(200 * time.Microsecond)
	}
	if !sawFull {
		t.Errorf("never saw %d running and %d queued (max running %d, max queued %d)", k, n-k, maxRunning, maxQueued)
	}
	for range n {
		o := <-results
		if o.err != nil || o.res.Value != "Request done" {
			t.Errorf("result %+v, err %v; want Request done", o.res, o.err)
		}
		if o.res.Worker == "" {
			t.Errorf("empty Worker in %+v", o.res)
		}
	}
	if st := statsOf(t, s); st.Completed != n || st.Failed != 0 || st.Running != 0 || st.Queued != 0 {
		t.Errorf("final stats %+v", st)
	}
}

// Waiters get the slot in arrival order.
func TestSemaphoreFIFO(t *testing.T) {
	s := newSemaphore(t, 1)
	gate := newGate(t)
	blocker := execAsync(s, gate, cpuOne)
	gate.waitStarted(t, "blocker")

	var log orderLog
	names := []string{"A", "B", "C", "D", "E"}
	var chans []<-chan outcome
	for i, name := range names {
		chans = append(chans, execAsync(s, newRecord(name, &log), cpuOne))
		// Its arrival is certain once it is in the semaphore's line: Queued
		// counts exactly the callers in line.
		waitFor(t, fmt.Sprintf("%s to wait for the slot", name), func() bool {
			return statsOf(t, s).Queued == int64(i+1)
		})
	}
	if st := statsOf(t, s); st.Running != 1 || st.Queued != int64(len(names)) {
		t.Errorf("stats %+v: want 1 running, %d queued", st, len(names))
	}
	gate.open()
	if o := await(t, blocker, "blocker"); o.err != nil || o.res.Value != "0" {
		t.Fatalf("blocker: %+v, %v", o.res, o.err)
	}
	for i, ch := range chans {
		o := await(t, ch, names[i])
		if o.err != nil || o.res.Value != "0" {
			t.Errorf("%s: %+v, %v", names[i], o.res, o.err)
		}
		if o.res.Queue <= 0 {
			t.Errorf("%s waited but Queue = %v", names[i], o.res.Queue)
		}
		if o.res.Worker == "" {
			t.Errorf("%s: empty Worker", names[i])
		}
	}
	if got := log.get(); !slices.Equal(got, names) {
		t.Errorf("start order %v, want %v", got, names)
	}
	if st := statsOf(t, s); st.Completed != int64(len(names)+1) || st.Failed != 0 || st.Queued != 0 || st.Running != 0 {
		t.Errorf("final stats %+v", st)
	}
}

// A waiter whose context ends leaves the queue at once, and its place is
// not lost: the slot still goes round.
func TestSemaphoreCancelledWaiter(t *testing.T) {
	s := newSemaphore(t, 1)
	gate := newGate(t)
	blocker := execAsync(s, gate, cpuOne)
	gate.waitStarted(t, "blocker")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	front := execAsync(s, ctx, noop)
	waitFor(t, "the first waiter to queue", func() bool {
		return statsOf(t, s).Queued == 1
	})
	var log orderLog
	behind := execAsync(s, newRecord("behind", &log), cpuOne)
	waitFor(t, "the second waiter to queue", func() bool {
		return statsOf(t, s).Queued == 2
	})

	cancel()
	// The blocker still holds the only slot, so this returns because the
	// waiter left the queue, not because it got the slot.
	o := await(t, front, "cancelled waiter")
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled waiter: err %v, want context.Canceled", o.err)
	}
	if o.res.Queue <= 0 || o.res.Worker == "" {
		t.Errorf("cancelled waiter: result %+v, want Queue > 0 and a Worker", o.res)
	}
	st := waitStats(t, s, "the queue to shrink", func(st taskproto.Stats) bool { return st.Queued == 1 })
	if st.Failed != 1 || st.Running != 1 || st.Completed != 0 {
		t.Errorf("stats after cancel %+v: want 1 failed, 1 running, 0 completed", st)
	}

	gate.open()
	if o := await(t, blocker, "blocker"); o.err != nil || o.res.Value != "0" {
		t.Fatalf("blocker: %+v, %v", o.res, o.err)
	}
	if o := await(t, behind, "waiter behind the cancelled one"); o.err != nil || o.res.Value != "0" {
		t.Fatalf("waiter behind: %+v, %v", o.res, o.err)
	}
	// With K=1 a leaked slot would make this hang.
	if o := await(t, execAsync(s, context.Background(), noop), "task after the cancel"); o.err != nil {
		t.Fatalf("task after the cancel: %v", o.err)
	}
	if st := statsOf(t, s); st.Completed != 3 || st.Failed != 1 || st.Queued != 0 || st.Running != 0 {
		t.Errorf("final stats %+v: want 3 completed, 1 failed", st)
	}
}

// A task whose context is already done does not run: noop ignores its
// context, so had it run it would count as completed.
func TestSemaphoreCancelledBeforeExecute(t *testing.T) {
	s := newSemaphore(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := await(t, execAsync(s, ctx, noop), "cancelled task")
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", o.err)
	}
	if st := statsOf(t, s); st.Failed != 1 || st.Completed != 0 || st.Queued != 0 || st.Running != 0 {
		t.Errorf("stats %+v: want 1 failed, 0 completed", st)
	}
}

func TestSemaphoreCounters(t *testing.T) {
	s := newSemaphore(t, 2)
	for range 3 {
		if _, err := taskproto.Run(context.Background(), s, noop); err != nil {
			t.Fatal(err)
		}
	}
	_, err := taskproto.Run(context.Background(), s, taskproto.Task{Kind: "nope"})
	var te *taskproto.Error
	if !errors.As(err, &te) || te.Code != taskproto.CodeUnknownTask {
		t.Fatalf("err %v, want unknown_task", err)
	}
	if st := statsOf(t, s); st.Completed != 3 || st.Failed != 1 || st.Capacity != 2 || st.Running != 0 || st.Queued != 0 {
		t.Errorf("stats %+v: want 3 completed, 1 failed, capacity 2", st)
	}
	// The slot of a failed task is given back.
	for range 3 {
		if _, err := taskproto.Run(context.Background(), s, noop); err != nil {
			t.Fatal(err)
		}
	}
}

// Tasks submitted one after another get the slot in that order, with no
// waiting between the submissions: what a pipelined connection relies on.
func TestSemaphoreSubmitOrder(t *testing.T) {
	s := newSemaphore(t, 1)
	gate := newGate(t)
	blocker := execAsync(s, gate, cpuOne)
	gate.waitStarted(t, "blocker")

	var log orderLog
	names := []string{"A", "B", "C", "D", "E", "F", "G", "H"}
	results := make(chan error, len(names))
	for _, name := range names {
		s.Submit(newRecord(name, &log), cpuOne, func(_ taskproto.Result, err error) { results <- err })
	}
	gate.open()
	if o := await(t, blocker, "blocker"); o.err != nil {
		t.Fatal(o.err)
	}
	for range names {
		select {
		case err := <-results:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("submitted tasks did not finish")
		}
	}
	if got := log.get(); !slices.Equal(got, names) {
		t.Errorf("start order %v, want submission order %v", got, names)
	}
}

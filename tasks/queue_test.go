package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// A queue hands jobs out oldest first, drops a job whose context ends while
// it waits (answered through OnDrop, once), and Drain empties it.
func TestQueue(t *testing.T) {
	dropped := make(chan *tasks.Job, 4)
	q := &tasks.Queue{OnDrop: func(j *tasks.Job) { dropped <- j }}
	ctx, cancel := context.WithCancel(context.Background())
	noop := func(taskproto.Result, error) {}
	first := tasks.NewJob(context.Background(), taskproto.Task{Kind: taskproto.KindNoop, N: 1}, noop)
	gone := tasks.NewJob(ctx, taskproto.Task{Kind: taskproto.KindNoop, N: 2}, noop)
	last := tasks.NewJob(context.Background(), taskproto.Task{Kind: taskproto.KindNoop, N: 3}, noop)
	q.Lock()
	for _, j := range []*tasks.Job{first, gone, last} {
		q.PushLocked(j)
	}
	if q.OldestLocked() != first || q.LenLocked() != 3 {
		q.Unlock()
		t.Fatalf("oldest %v of %d, want the first of 3", q.OldestLocked(), q.LenLocked())
	}
	q.Unlock()

	cancel()
	select {
	case j := <-dropped:
		if j != gone {
			t.Fatalf("dropped task %d, want 2", j.Task.N)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a job whose context ended was not dropped")
	}
	q.Lock()
	if j := q.PopLocked(); j != first {
		t.Errorf("popped %v, want the first", j)
	}
	q.Unlock()
	if left := q.Drain(); len(left) != 1 || left[0] != last || q.Len() != 0 {
		t.Errorf("drained %v, %d left; want the last and none", left, q.Len())
	}
	// A job taken before its context ends is not dropped afterwards.
	ctx2, cancel2 := context.WithCancel(context.Background())
	q.Lock()
	q.PushLocked(tasks.NewJob(ctx2, taskproto.Task{Kind: taskproto.KindNoop}, noop))
	q.PopLocked()
	q.Unlock()
	cancel2()
	select {
	case j := <-dropped:
		t.Errorf("task %d dropped after it was taken", j.Task.N)
	case <-time.After(50 * time.Millisecond):
	}
}

// A Meter counts what Run and Refuse answer, and does not run a task whose
// caller has gone.
func TestMeter(t *testing.T) {
	var m tasks.Meter
	var got []error
	done := func(_ taskproto.Result, err error) { got = append(got, err) }
	m.Run(context.Background(), tasks.Runner{}, taskproto.Task{Kind: taskproto.KindFib, N: 10}, "w0", 0, done)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.Run(ctx, tasks.Runner{}, taskproto.Task{Kind: taskproto.KindFib, N: 10}, "w0", 0, done)
	m.Refuse(done, taskproto.Result{}, taskproto.Errorf(taskproto.CodeOverloaded, "full"))
	st := m.Snapshot(4)
	if st.Completed != 1 || st.Failed != 2 || st.Running != 0 || st.Capacity != 4 {
		t.Errorf("stats %+v, want 1 completed, 2 failed, capacity 4", st)
	}
	if len(got) != 3 || got[0] != nil || !errors.Is(got[1], context.Canceled) {
		t.Errorf("answers %v", got)
	}
}

// A FIFO strategy's core: workers take jobs from a Queue in arrival order
// and run them through a Meter; a job whose caller gives up while it waits
// is answered at once, without a worker.
func ExampleQueue() {
	var m tasks.Meter
	q := &tasks.Queue{}
	q.OnDrop = func(j *tasks.Job) {
		m.Queued.Add(-1)
		m.Refuse(j.Done, taskproto.Result{Queue: time.Since(j.Enqueued)}, j.Ctx.Err())
	}
	ready := sync.NewCond(q) // on the queue's lock: a job was queued, or closed
	closed := false          // guarded by the queue's lock
	var answered, workers sync.WaitGroup
	for w := range 2 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				q.Lock()
				for q.LenLocked() == 0 && !closed {
					ready.Wait()
				}
				if closed {
					q.Unlock()
					return
				}
				j := q.PopLocked()
				q.Unlock()
				m.Queued.Add(-1)
				m.Run(j.Ctx, tasks.Runner{}, j.Task, fmt.Sprintf("w%d", w), time.Since(j.Enqueued), j.Done)
			}
		}()
	}
	results := make([]string, 5)
	for i := range results {
		answered.Add(1)
		j := tasks.NewJob(context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: int64(10 * (i + 1))},
			func(r taskproto.Result, err error) { results[i] = r.Value; answered.Done() })
		q.Lock()
		q.PushLocked(j)
		m.Queued.Add(1)
		ready.Signal()
		q.Unlock()
	}
	answered.Wait()
	q.Lock()
	closed = true
	ready.Broadcast()
	q.Unlock()
	workers.Wait()
	fmt.Println(results, m.Snapshot(2).Completed)
	// Output: [55 6765 832040 102334155 12586269025] 5
}

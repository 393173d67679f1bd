package launch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

func TestResultRoundTrip(t *testing.T) {
	var mu sync.Mutex
	var got []taskproto.Task
	r, _, _ := pair(t, &fakeExecutor{OnSubmit: func(_ context.Context, task taskproto.Task, done taskproto.Done) {
		mu.Lock()
		got = append(got, task)
		mu.Unlock()
		done(taskproto.Result{
			Value:  "12586269025",
			Worker: "worker-3",
			Queue:  1234567 * time.Nanosecond, // 1234.567µs
			Run:    2*time.Second + 999*time.Nanosecond,
		}, nil)
	}})
	o := await(t, submit(t, r, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 50}), "fib")
	want := taskproto.Result{Value: "12586269025", Worker: "worker-3", Queue: 1234 * time.Microsecond, Run: 2 * time.Second}
	if o.Err != nil || o.Res != want {
		t.Errorf("outcome %+v, %v; want %+v", o.Res, o.Err, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != (taskproto.Task{Kind: taskproto.KindFib, N: 50}) {
		t.Errorf("executor got %+v", got)
	}
}

// Error codes cross the channel; an error that is not an *Error becomes
// internal, and a context's deadline becomes timeout.
func TestErrorsRoundTrip(t *testing.T) {
	r, _, _ := pair(t, &fakeExecutor{OnSubmit: func(ctx context.Context, task taskproto.Task, done taskproto.Done) {
		switch task.N {
		case 1:
			done(taskproto.Result{Worker: "w1"}, taskproto.Errorf(taskproto.CodeOutOfRange, "n=%d is above the limit %d", 100, 90))
		case 2:
			done(taskproto.Result{}, errors.New("disk on fire"))
		case 3:
			done(taskproto.Result{}, fmt.Errorf("wrapped: %w", &taskproto.Error{Code: taskproto.CodeOverloaded, Message: "queue full"}))
		case 4:
			<-ctx.Done() // the sender's deadline, carried over the channel
			done(taskproto.Result{}, ctx.Err())
		}
	}})
	cases := []struct {
		n    int64
		code taskproto.Code
		msg  string
	}{
		{1, taskproto.CodeOutOfRange, "n=100 is above the limit 90"},
		{2, taskproto.CodeInternal, "disk on fire"},
		{3, taskproto.CodeOverloaded, "queue full"},
		{4, taskproto.CodeTimeout, "task ran past its deadline"},
	}
	for _, c := range cases {
		ctx := context.Background()
		if c.n == 4 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			// The far end's deadline comes from the task: it fires first.
			ctx = withShortDeadline(ctx, 50*time.Millisecond)
		}
		o := await(t, submit(t, r, ctx, taskproto.Task{Kind: taskproto.KindCPU, N: c.n}), fmt.Sprint("task ", c.n))
		if te := wantCode(t, o.Err, c.code); te.Message != c.msg {
			t.Errorf("task %d: message %q, want %q", c.n, te.Message, c.msg)
		}
	}
}

// withShortDeadline is ctx with a deadline d from now whose Done never
// fires here: only the far end, which rebuilds the deadline from the task,
// acts on it.
type shortDeadline struct {
	context.Context
	at time.Time
}

func (s shortDeadline) Deadline() (time.Time, bool) { return s.at, true }

func withShortDeadline(ctx context.Context, d time.Duration) context.Context {
	return shortDeadline{Context: ctx, at: time.Now().Add(d)}
}

// The far end runs each task under a deadline as long as the sender's,
// and none when the sender has none.
func TestDeadlinePropagation(t *testing.T) {
	type seen struct {
		dl time.Time
		ok bool
	}
	got := make(chan seen, 2)
	r, _, _ := pair(t, &fakeExecutor{OnSubmit: func(ctx context.Context, task taskproto.Task, done taskproto.Done) {
		dl, ok := ctx.Deadline()
		got <- seen{dl, ok}
		done(taskproto.Result{}, nil)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	sent, _ := ctx.Deadline()
	await(t, submit(t, r, ctx, taskproto.Task{Kind: taskproto.KindNoop}), "with a deadline")
	s := <-got
	if !s.ok || s.dl.After(sent.Add(100*time.Millisecond)) || s.dl.Before(sent.Add(-time.Second)) {
		t.Errorf("far deadline %v (%v), sender's %v", s.dl, s.ok, sent)
	}
	await(t, submit(t, r, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}), "without a deadline")
	if s := <-got; s.ok {
		t.Errorf("far end got deadline %v for a task sent without one", s.dl)
	}
}

// Many tasks in flight at once, answered in random order, each reach their
// own caller exactly once.
func TestMultiplexing(t *testing.T) {
	r, _, _ := pair(t, &fakeExecutor{OnSubmit: func(_ context.Context, task taskproto.Task, done taskproto.Done) {
		go func() {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			done(taskproto.Result{Value: strconv.FormatInt(task.N*task.N, 10)}, nil)
		}()
	}})
	const n = 2000
	chans := make([]<-chan outcome, n)
	for i := range n {
		chans[i] = submit(t, r, context.Background(), taskproto.Task{Kind: taskproto.KindCPU, N: int64(i)})
	}
	for i, ch := range chans {
		o := await(t, ch, "task")
		if want := strconv.Itoa(i * i); o.Err != nil || o.Res.Value != want {
			t.Fatalf("task %d: %+v, %v; want %s", i, o.Res, o.Err, want)
		}
	}
	if n := r.Outstanding(); n != 0 {
		t.Errorf("%d tasks still outstanding", n)
	}
}

// A task whose context ends is answered at once, the far end's context
// for it ends too (the cancel crossed the channel), and the far end's late
// answer reaches nobody.
func TestCancel(t *testing.T) {
	arrived := make(chan context.Context, 1)
	late := make(chan struct{})
	r, _, _ := pair(t, &fakeExecutor{OnSubmit: func(ctx context.Context, task taskproto.Task, done taskproto.Done) {
		if task.Kind == taskproto.KindNoop {
			done(taskproto.Result{}, nil)
			return
		}
		arrived <- ctx
		context.AfterFunc(ctx, func() {
			<-late
			done(taskproto.Result{Value: "late"}, nil)
		})
	}})
	ctx, cancel := context.WithCancel(context.Background())
	ch := submit(t, r, ctx, taskproto.Task{Kind: taskproto.KindSleep, N: 1000})
	var far context.Context
	select {
	case far = <-arrived:
	case <-time.After(hangGuard):
		t.Fatal("task did not arrive")
	}
	cancel()
	if o := await(t, ch, "cancelled task"); !errors.Is(o.Err, context.Canceled) {
		t.Fatalf("cancelled task: %+v, %v; want context.Canceled", o.Res, o.Err)
	}
	select {
	case <-far.Done():
	case <-time.After(hangGuard):
		t.Fatal("the far end's context did not end: the cancel did not cross")
	}
	close(late) // the far end answers now; submit fails the test on a second answer
	await(t, submit(t, r, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}), "noop after the cancel")
}

// When the channel breaks every task still out fails with
// executor_failed, Done is closed, and later tasks fail at once.
func TestChannelBreak(t *testing.T) {
	arrived := make(chan context.Context, 3)
	r, far, _ := pair(t, blocking(arrived))
	var chans []<-chan outcome
	for range 3 {
		chans = append(chans, submit(t, r, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 1}))
		<-arrived
	}
	far.Close()
	for _, ch := range chans {
		wantCode(t, await(t, ch, "task out when the channel broke").Err, taskproto.CodeExecutorFailed)
	}
	select {
	case <-r.Done():
	case <-time.After(hangGuard):
		t.Fatal("Done not closed")
	}
	te := wantCode(t, await(t, submit(t, r, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}), "after").Err,
		taskproto.CodeExecutorFailed)
	if te.Message != "plugin fake stopped" {
		t.Errorf("message %q", te.Message)
	}
}

// Closing the Remote fails what is out and ends the far end's tasks: the
// far end cancels them when the channel ends, and ServeTasks returns once
// each is answered.
func TestCloseEndsFarTasks(t *testing.T) {
	arrived := make(chan context.Context, 2)
	r, _, sv := pair(t, blocking(arrived))
	a := submit(t, r, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 1})
	b := submit(t, r, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 2})
	ctxs := []context.Context{<-arrived, <-arrived}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan outcome{a, b} {
		wantCode(t, await(t, ch, "task out at Close").Err, taskproto.CodeExecutorFailed)
	}
	select {
	case <-sv.done:
		if sv.err != nil {
			t.Errorf("wire.ServeTasks: %v", sv.err)
		}
	case <-time.After(hangGuard):
		t.Fatal("wire.ServeTasks did not return")
	}
	for i, c := range ctxs {
		if c.Err() == nil {
			t.Errorf("far task %d still has a live context", i)
		}
	}
}

// Every task context the far end is given has ended by the time the task
// is answered, whichever way it ended: none is left holding a timer.
func TestTaskContextsEnd(t *testing.T) {
	var mu sync.Mutex
	var ctxs []context.Context
	r, _, _ := pair(t, &fakeExecutor{OnSubmit: func(ctx context.Context, task taskproto.Task, done taskproto.Done) {
		mu.Lock()
		ctxs = append(ctxs, ctx)
		mu.Unlock()
		if task.N%2 == 0 {
			done(taskproto.Result{}, nil)
			return
		}
		context.AfterFunc(ctx, func() { done(taskproto.Result{}, ctx.Err()) })
	}})
	for i := range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		ch := submit(t, r, ctx, taskproto.Task{Kind: taskproto.KindNoop, N: int64(i)})
		if i%2 == 1 {
			cancel()
		}
		await(t, ch, "task")
		cancel()
	}
	deadline := time.Now().Add(hangGuard)
	for {
		live := 0
		mu.Lock()
		for _, c := range ctxs {
			if c.Err() == nil {
				live++
			}
		}
		n := len(ctxs)
		mu.Unlock()
		if n == 200 && live == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d far task contexts still live", live, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

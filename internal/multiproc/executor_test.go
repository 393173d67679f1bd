//go:build unix

package multiproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/faults"
	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto"
)

func TestTaskKinds(t *testing.T) {
	e := newExecutor(t, nil)
	if info := e.Info(); info.Name != "multiproc" || info.Concurrency != 2 || info.PID != os.Getpid() {
		t.Errorf("Info = %+v", info)
	}
	for _, tc := range []struct {
		task    taskproto.Task
		want    string
		wantRun bool // Run must be positive
	}{
		{taskproto.Task{Kind: taskproto.KindFib, N: 90}, "2880067194370816120", false},
		{taskproto.Task{Kind: taskproto.KindFib, N: 0}, "0", false},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 1000}, "499500", false},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 1_000_000}, "499999500000", true},
		{taskproto.Task{Kind: taskproto.KindIO, N: 4096}, "4096", false},
		{taskproto.Task{Kind: taskproto.KindSleep, N: 10}, "Request done", true},
		{taskproto.Task{Kind: taskproto.KindNoop}, "", false},
	} {
		o := run(t, e, context.Background(), tc.task, hangMax)
		if o.err != nil {
			t.Errorf("%s %d: error %v", tc.task.Kind, tc.task.N, o.err)
			continue
		}
		if o.res.Value != tc.want {
			t.Errorf("%s %d = %q, want %q", tc.task.Kind, tc.task.N, o.res.Value, tc.want)
		}
		if o.res.Worker != "w0" && o.res.Worker != "w1" {
			t.Errorf("%s %d: Worker %q, want w0 or w1", tc.task.Kind, tc.task.N, o.res.Worker)
		}
		if tc.wantRun && o.res.Run <= 0 {
			t.Errorf("%s %d: Run %v, want > 0", tc.task.Kind, tc.task.N, o.res.Run)
		}
		if tc.task.Kind == taskproto.KindSleep && o.res.Run < 10*time.Millisecond {
			t.Errorf("sleep 10: Run %v, want >= 10ms", o.res.Run)
		}
	}
	// A worker's error comes back with its code.
	o := run(t, e, context.Background(), taskproto.Task{Kind: "bogus", N: 1}, hangMax)
	wantCode(t, o.err, taskproto.CodeUnknownTask)

	st := stats(t, e)
	if st.Completed != 7 || st.Failed != 1 || st.Running != 0 || st.Queued != 0 || st.Capacity != 2 {
		t.Errorf("stats %+v: want 7 completed, 1 failed, none running or queued, capacity 2", st)
	}
	if len(st.Workers) != 2 || st.Workers[0].ID != "w0" || st.Workers[1].ID != "w1" {
		t.Fatalf("workers %+v", st.Workers)
	}
	var tasks int64
	for _, w := range st.Workers {
		tasks += w.Tasks
		if w.State != "idle" || w.PID <= 0 || w.PID == os.Getpid() || w.Restarts != 0 {
			t.Errorf("worker %+v: want idle, own pid, no restarts", w)
		}
	}
	if tasks != 8 {
		t.Errorf("workers ran %d tasks, want 8", tasks)
	}
	// No io file is left behind.
	if entries, _ := os.ReadDir(e.opt.DataDir); len(entries) != 0 {
		t.Errorf("data dir holds %d entries", len(entries))
	}
}

func TestLeastLoaded(t *testing.T) {
	e := newExecutor(t, nil)
	sleep := taskproto.Task{Kind: taskproto.KindSleep, N: 300}
	w1 := submit(e, context.Background(), sleep)
	w2 := submit(e, context.Background(), sleep)
	st := stats(t, e)
	if st.Running != 2 || st.Queued != 0 {
		t.Errorf("stats %+v: want 2 running, none queued", st)
	}
	for _, w := range st.Workers {
		if w.State != "busy" {
			t.Errorf("worker %+v: want busy", w)
		}
	}
	o1, o2 := await(t, w1, hangMax), await(t, w2, hangMax)
	if o1.err != nil || o2.err != nil {
		t.Fatalf("errors %v, %v", o1.err, o2.err)
	}
	if o1.res.Worker == o2.res.Worker {
		t.Errorf("both tasks ran on %s; want one per worker", o1.res.Worker)
	}
	// The next task goes to a worker again.
	if o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, prompt); o.err != nil {
		t.Errorf("noop: %v", o.err)
	}
}

func TestQueueAndOverload(t *testing.T) {
	e := newExecutor(t, nil) // 2 workers, Inflight 1, QueueSize 8
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	queueCtx, cancelQueue := context.WithCancel(context.Background())
	defer cancelQueue()
	long := taskproto.Task{Kind: taskproto.KindSleep, N: 10_000}

	var running, queued []func() (taskproto.Result, error)
	for range 2 {
		running = append(running, submit(e, runCtx, long))
	}
	for i := range 8 {
		queued = append(queued, submit(e, queueCtx, long))
		if st := stats(t, e); st.Queued != int64(i+1) || st.Running != 2 {
			t.Fatalf("after %d queued: stats %+v", i+1, st)
		}
	}
	o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, prompt)
	wantCode(t, o.err, taskproto.CodeOverloaded)

	// Queued tasks leave first (so no queued task is handed to a worker as
	// a running one is cancelled), then the running ones.
	cancelQueue()
	for _, w := range queued {
		if o := await(t, w, prompt); !errors.Is(o.err, context.Canceled) {
			t.Errorf("queued task: %v, want context.Canceled", o.err)
		}
	}
	if st := stats(t, e); st.Queued != 0 || st.Running != 2 {
		t.Errorf("after cancelling the queued tasks: stats %+v", st)
	}
	cancelRun()
	for _, w := range running {
		if o := await(t, w, prompt); !errors.Is(o.err, context.Canceled) {
			t.Errorf("running task: %v, want context.Canceled", o.err)
		}
	}
	// Each abandoned task holds its worker's slot until the worker has
	// stopped it, which the cancel frame makes prompt.
	waitStats(t, e, prompt, "both workers to stop their cancelled tasks", func(st taskproto.Stats) bool {
		return st.Queued == 0 && st.Running == 0
	})
	// Both workers got their cancel frames: two sleeps run at once, promptly.
	a := submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 50})
	b := submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 50})
	for _, w := range []func() (taskproto.Result, error){a, b} {
		if o := await(t, w, prompt); o.err != nil {
			t.Errorf("sleep after cancellation: %v", o.err)
		}
	}
}

func TestQueueFIFO(t *testing.T) {
	e := newExecutor(t, func(o *Options) { o.Processes = 1 })
	blocker := submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 200})
	const n = 6
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range n {
		w := submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 40})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w(); err != nil {
				t.Errorf("task %d: %v", i, err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
	}
	if st := stats(t, e); st.Queued != n {
		t.Errorf("stats %+v: want %d queued", st, n)
	}
	if o := await(t, blocker, hangMax); o.err != nil {
		t.Fatalf("blocker: %v", o.err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hangMax):
		t.Fatal("queued tasks did not finish")
	}
	for i, got := range order {
		if got != i {
			t.Fatalf("completion order %v, want submission order", order)
		}
	}
}

func TestCancelQueued(t *testing.T) {
	e := newExecutor(t, func(o *Options) { o.Processes = 1 })
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	blocker := submit(e, ctx1, taskproto.Task{Kind: taskproto.KindSleep, N: 10_000})
	queued := submit(e, ctx2, taskproto.Task{Kind: taskproto.KindSleep, N: 10})
	if st := stats(t, e); st.Queued != 1 || st.Running != 1 {
		t.Fatalf("stats %+v: want 1 running, 1 queued", st)
	}
	cancel2()
	o := await(t, queued, prompt)
	if !errors.Is(o.err, context.Canceled) {
		t.Errorf("queued task: %v, want context.Canceled", o.err)
	}
	if o.res.Worker != "" {
		t.Errorf("queued task reports worker %q", o.res.Worker)
	}
	if st := stats(t, e); st.Queued != 0 || st.Running != 1 || st.Failed != 1 {
		t.Errorf("stats %+v: want none queued, 1 running, 1 failed", st)
	}
	cancel1()
	if o := await(t, blocker, prompt); !errors.Is(o.err, context.Canceled) {
		t.Errorf("running task: %v, want context.Canceled", o.err)
	}
	if o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, prompt); o.err != nil {
		t.Errorf("noop: %v", o.err)
	}
}

func TestCancelRunning(t *testing.T) {
	e := newExecutor(t, func(o *Options) { o.Processes = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := submit(e, ctx, taskproto.Task{Kind: taskproto.KindSleep, N: 10_000})
	waitStats(t, e, prompt, "a busy worker", func(st taskproto.Stats) bool { return st.Workers[0].State == "busy" })
	time.Sleep(50 * time.Millisecond) // let the worker start the sleep
	cancel()
	o := await(t, w, prompt)
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("running task: %v, want context.Canceled", o.err)
	}
	if o.res.Worker != "w0" {
		t.Errorf("cancelled task reports worker %q, want w0", o.res.Worker)
	}
	st := waitStats(t, e, prompt, "the worker to stop the cancelled task", func(st taskproto.Stats) bool {
		return st.Running == 0 && st.Workers[0].State == "idle"
	})
	// Had the worker missed the cancel frame, this would wait ~10 s behind
	// the sleep.
	o = run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10}, prompt)
	if o.err != nil || o.res.Value != "55" || o.res.Worker != "w0" {
		t.Errorf("fib 10 after a cancel: %+v, %v", o.res, o.err)
	}
	if pid := stats(t, e).Workers[0].PID; pid != st.Workers[0].PID {
		t.Errorf("worker pid changed from %d to %d: a cancel must not cost the process", st.Workers[0].PID, pid)
	}
}

func TestDeadline(t *testing.T) {
	e := newExecutor(t, func(o *Options) { o.Processes = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	o := run(t, e, ctx, taskproto.Task{Kind: taskproto.KindSleep, N: 5000}, prompt)
	if o.err == nil {
		t.Fatalf("sleep 5000 under a 200 ms deadline succeeded: %+v", o.res)
	}
	if code := taskproto.AsError(ctx, o.err).Code; code != taskproto.CodeTimeout {
		t.Errorf("error %v: code %q, want timeout", o.err, code)
	}
	if o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, prompt); o.err != nil {
		t.Errorf("noop after a timeout: %v", o.err)
	}
}

func TestWorkerKilled(t *testing.T) {
	e := newExecutor(t, nil)
	before := stats(t, e)
	w := submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 800})
	var victim taskproto.WorkerStats
	waitStats(t, e, prompt, "a busy worker", func(st taskproto.Stats) bool {
		for _, w := range st.Workers {
			if w.State == "busy" {
				victim = w
				return true
			}
		}
		return false
	})
	time.Sleep(100 * time.Millisecond) // the worker is inside the sleep
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", victim.PID, err)
	}
	o := await(t, w, hangMax)
	if o.err != nil || o.res.Value != "Request done" {
		t.Fatalf("task on a killed worker: %+v, %v; want it retried and done", o.res, o.err)
	}
	if o.res.Worker == victim.ID {
		t.Errorf("task reports the killed worker %s", victim.ID)
	}
	st := stats(t, e)
	if st.Completed != before.Completed+1 || st.Failed != before.Failed {
		t.Errorf("completed %d→%d, failed %d→%d: want exactly one success", before.Completed, st.Completed, before.Failed, st.Failed)
	}
	st = waitStats(t, e, hangMax, "the killed worker restarted", func(st taskproto.Stats) bool {
		for _, w := range st.Workers {
			if w.ID == victim.ID {
				return w.Restarts == 1 && w.State != "restarting" && w.PID != victim.PID && w.PID > 0
			}
		}
		return false
	})
	if st.Restarts != 1 {
		t.Errorf("restarts %d, want 1", st.Restarts)
	}
	waitGone(t, victim.PID)
	// Both workers run tasks again.
	a := submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 100})
	b := submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 100})
	oa, ob := await(t, a, hangMax), await(t, b, hangMax)
	if oa.err != nil || ob.err != nil || oa.res.Worker == ob.res.Worker {
		t.Errorf("after restart: %+v %v / %+v %v; want two successes on two workers", oa.res, oa.err, ob.res, ob.err)
	}
}

func TestFaultRetriedOnceThenFails(t *testing.T) {
	t.Setenv(faults.Env, "panic:fib:13")
	e := newExecutor(t, nil)
	o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 13}, hangMax)
	wantCode(t, o.err, taskproto.CodeExecutorFailed)
	st := waitStats(t, e, hangMax, "both workers back", func(st taskproto.Stats) bool {
		return allReady(st) && st.Restarts >= 2
	})
	for _, w := range st.Workers {
		if w.Restarts != 1 {
			t.Errorf("worker %+v: want 1 restart (one death each: the task and its retry)", w)
		}
	}
	if st.Failed != 1 || st.Completed != 0 {
		t.Errorf("stats %+v: want exactly one failure", st)
	}
	if o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 12}, hangMax); o.err != nil || o.res.Value != "144" {
		t.Errorf("fib 12 after the fault: %+v, %v", o.res, o.err)
	}
}

// A worker that runs out of memory under worker_memory_mb answers its task
// resource_exhausted, saying so, and is not handed to another worker to
// kill it too; the worker is replaced, and its crash report removed.
func TestOutOfMemoryIsResourceExhausted(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector its own allocator runs out of memory first, and exits 66 without Go's report")
	}
	t.Setenv(faults.Env, "hog:fib:13")
	e := newExecutor(t, func(o *Options) { o.MemoryMB = 64 })
	before := waitStats(t, e, hangMax, "both workers up", allReady)
	o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 13}, hangMax)
	wantCode(t, o.err, taskproto.CodeResourceExhausted)
	if te := taskproto.AsError(nil, o.err); !strings.Contains(te.Message, "out of memory") || !strings.Contains(te.Message, "worker_memory_mb") {
		t.Errorf("message %q does not say the worker ran out of memory under worker_memory_mb", te.Message)
	}
	st := waitStats(t, e, hangMax, "the worker replaced", func(st taskproto.Stats) bool { return allReady(st) && st.Restarts >= 1 })
	time.Sleep(200 * time.Millisecond) // a retry would have killed another by now
	if st = waitStats(t, e, hangMax, "ready", allReady); st.Restarts != 1 {
		t.Errorf("%d restarts, want 1: the task was retried on another worker", st.Restarts)
	}
	for _, w := range before.Workers {
		if _, err := os.Stat(crashPath(w.PID)); err == nil && !supervise.Alive(w.PID) {
			t.Errorf("the crash report of dead worker %d is left behind", w.PID)
		}
	}
	t.Logf("answer: %v", o.err)
	if o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 12}, hangMax); o.err != nil || o.res.Value != "144" {
		t.Errorf("fib 12 after the fault: %+v, %v", o.res, o.err)
	}
}

func TestClose(t *testing.T) {
	e := newExecutor(t, func(o *Options) { o.Processes = 1 })
	running := submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 10_000})
	var queued []func() (taskproto.Result, error)
	for range 3 {
		queued = append(queued, submit(e, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 10}))
	}
	st := waitStats(t, e, prompt, "1 running, 3 queued", func(st taskproto.Stats) bool {
		return st.Running == 1 && st.Queued == 3 && st.Workers[0].State == "busy"
	})
	pid := st.Workers[0].PID

	done := make(chan error, 1)
	go func() { done <- e.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(hangMax):
		t.Fatal("Close hung")
	}
	for _, w := range queued {
		wantCode(t, await(t, w, prompt).err, taskproto.CodeShuttingDown)
	}
	wantCode(t, await(t, running, prompt).err, taskproto.CodeExecutorFailed)
	o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, prompt)
	wantCode(t, o.err, taskproto.CodeShuttingDown)
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitGone(t, pid)
}

// TestCloseIdle closes an idle executor: every worker goes, promptly.
func TestCloseIdle(t *testing.T) {
	e := newExecutor(t, nil)
	if o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, prompt); o.err != nil {
		t.Fatal(o.err)
	}
	pids := []int{}
	for _, w := range stats(t, e).Workers {
		pids = append(pids, w.PID)
	}
	closeAndCheck(t, e)
	for _, pid := range pids {
		waitGone(t, pid)
	}
	if st := stats(t, e); st.Restarts != 0 {
		t.Errorf("Close restarted workers: %+v", st)
	}
}

func TestConcurrentMixed(t *testing.T) {
	e := newExecutor(t, func(o *Options) {
		o.Inflight, o.Prefetch, o.QueueSize = 2, 1, 128
	})
	mix := []struct {
		task taskproto.Task
		want string
	}{
		{taskproto.Task{Kind: taskproto.KindFib, N: 90}, "2880067194370816120"},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 1000}, "499500"},
		{taskproto.Task{Kind: taskproto.KindIO, N: 4096}, "4096"},
		{taskproto.Task{Kind: taskproto.KindSleep, N: 2}, "Request done"},
		{taskproto.Task{Kind: taskproto.KindNoop}, ""},
	}
	const goroutines, each = 100, 5
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := mix[(g+i)%len(mix)]
				res, err := taskproto.Run(context.Background(), e, m.task)
				switch {
				case err != nil:
					errs <- fmt.Errorf("%s %d: %w", m.task.Kind, m.task.N, err)
				case res.Value != m.want:
					errs <- fmt.Errorf("%s %d = %q, want %q", m.task.Kind, m.task.N, res.Value, m.want)
				case res.Worker != "w0" && res.Worker != "w1":
					errs <- fmt.Errorf("%s %d: worker %q", m.task.Kind, m.task.N, res.Worker)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * hangMax):
		t.Fatal("tasks did not finish")
	}
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 10 {
			t.Error(err)
		}
	}
	st := stats(t, e)
	if st.Completed != goroutines*each || st.Failed != 0 || st.Running != 0 || st.Queued != 0 || st.Restarts != 0 {
		t.Errorf("stats %+v: want %d completed and nothing else", st, goroutines*each)
	}
	var tasks int64
	for _, w := range st.Workers {
		tasks += w.Tasks
		if w.Tasks == 0 {
			t.Errorf("worker %s ran no task", w.ID)
		}
	}
	if tasks != goroutines*each {
		t.Errorf("workers ran %d tasks, want %d", tasks, goroutines*each)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"no processes", func(o *Options) { o.Processes = 0 }},
		{"no inflight", func(o *Options) { o.Inflight = 0 }},
		{"no queue", func(o *Options) { o.QueueSize = 0 }},
		{"negative prefetch", func(o *Options) { o.Prefetch = -1 }},
		{"no gomaxprocs", func(o *Options) { o.GOMAXPROCS = 0 }},
		{"missing binary", func(o *Options) { o.Exe = t.TempDir() + "/no-such-binary" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := testOptions(t)
			tc.mod(&opt)
			e, err := New(opt)
			if err == nil {
				e.Close()
				t.Fatalf("New(%+v) succeeded", opt)
			}
			if e != nil {
				t.Errorf("New returned an executor with error %v", err)
			}
			if tc.name != "missing binary" && !strings.Contains(err.Error(), "need at least one") {
				t.Errorf("error %q", err)
			}
		})
	}
}

func TestNilLogger(t *testing.T) {
	opt := testOptions(t)
	opt.Processes, opt.Log = 1, nil
	e, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAndCheck(t, e) })
	if o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, prompt); o.err != nil {
		t.Error(o.err)
	}
}

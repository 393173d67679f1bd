package strategy

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// hangGuard bounds every wait in these tests. It is not a timing assertion:
// it only turns a hang into a failure.
const hangGuard = 10 * time.Second

type outcome struct {
	res taskproto.Result
	err error
}

// execAsync submits task to ex; the channel receives its outcome. A
// second call of done fails the test run (the channel holds one).
func execAsync(ex taskproto.Executor, ctx context.Context, task taskproto.Task) <-chan outcome {
	ch := make(chan outcome, 1)
	ex.Submit(ctx, task, func(res taskproto.Result, err error) {
		select {
		case ch <- outcome{res, err}:
		default:
			panic("done called twice for one task")
		}
	})
	return ch
}

// await waits for the outcome of an execAsync call.
func await(t *testing.T, ch <-chan outcome, what string) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(hangGuard):
		t.Fatalf("%s: no outcome within %v", what, hangGuard)
		return outcome{}
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", hangGuard, what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func statsOf(t *testing.T, ex taskproto.Executor) taskproto.Stats {
	t.Helper()
	st, err := ex.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

// waitStats polls ex's Stats until cond holds.
func waitStats(t *testing.T, ex taskproto.Executor, what string, cond func(taskproto.Stats) bool) taskproto.Stats {
	t.Helper()
	var st taskproto.Stats
	deadline := time.Now().Add(hangGuard)
	for {
		st = statsOf(t, ex)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last stats %+v", hangGuard, what, st)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// goroutines counts the goroutines whose stack mentions fn and, when state
// is not empty, whose state starts with it ("select", "chan receive"...).
func goroutines(fn, state string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if state != "" && !strings.Contains(header, "["+state) {
			continue
		}
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// poolWorkers counts the goroutines of every live Pool.
func poolWorkers() int {
	return goroutines("strategy.(*Pool).work(", "")
}

// gateCtx is a context whose Err blocks until the gate opens and then
// reports nil. The cpu task calls ctx.Err after each chunk of its loop, and
// the pool's worker calls it once before running a job, so a cpu task run
// with a gateCtx holds its slot or goroutine, without spinning, until the
// test opens the gate, and then succeeds. started is closed on the first
// call of Err, i.e. once a worker or slot has the task. Done is nil (from
// context.Background), so no select in Execute ever fires on it.
type gateCtx struct {
	context.Context
	started   chan struct{}
	release   chan struct{}
	startOnce sync.Once
	openOnce  sync.Once
}

// newGate returns a closed gate; it is opened at the end of the test at the
// latest, before any Close registered earlier runs.
func newGate(t *testing.T) *gateCtx {
	g := &gateCtx{Context: context.Background(), started: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gateCtx) Err() error {
	g.startOnce.Do(func() { close(g.started) })
	<-g.release
	return nil
}

func (g *gateCtx) open() { g.openOnce.Do(func() { close(g.release) }) }

func (g *gateCtx) waitStarted(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.started:
	case <-time.After(hangGuard):
		t.Fatalf("%s did not start within %v", what, hangGuard)
	}
}

// orderLog records the order in which tasks start running.
type orderLog struct {
	mu    sync.Mutex
	names []string
}

func (l *orderLog) add(name string) {
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
}

func (l *orderLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.names...)
}

// recordCtx is a never-done context that logs its name the first time Err
// is called: a cpu task calls Err when it runs, and the semaphore's wait
// calls only Done on its way to a slot.
type recordCtx struct {
	context.Context
	name string
	log  *orderLog
	once sync.Once
}

func newRecord(name string, log *orderLog) *recordCtx {
	return &recordCtx{Context: context.Background(), name: name, log: log}
}

func (r *recordCtx) Err() error {
	r.once.Do(func() { r.log.add(r.name) })
	return nil
}

var (
	noop    = taskproto.Task{Kind: taskproto.KindNoop}
	cpuOne  = taskproto.Task{Kind: taskproto.KindCPU, N: 1}     // sum of 0..0; calls ctx.Err once
	longCPU = taskproto.Task{Kind: taskproto.KindCPU, N: 4e9}   // seconds of work unless stopped
	longNap = taskproto.Task{Kind: taskproto.KindSleep, N: 6e5} // ten minutes unless cancelled
)

// poolSettings are the pool strategy's keys as the host hands them over.
func poolSettings[N ~int | ~int64](workers, queue N) map[string]string {
	return map[string]string{"pool.workers": fmt.Sprint(workers), "pool.queue_size": fmt.Sprint(queue)}
}

// semaphoreSettings are the semaphore strategy's key as the host hands it over.
func semaphoreSettings(k int64) map[string]string {
	return map[string]string{"other.asyn_semaphore": fmt.Sprint(k)}
}

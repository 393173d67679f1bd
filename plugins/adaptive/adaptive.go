package main

import (
	"container/list"
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/wslab/wslab/internal/limit"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// Keys are the keys the adaptive strategy reads.
var Keys = []taskproto.Key{
	{Section: "adaptive", Name: "min_concurrency", Type: taskproto.KeyInt, Default: "1", Min: 1, Max: 65536,
		Help: "the fewest CPU tasks it runs at once"},
	{Section: "adaptive", Name: "max_concurrency", Type: taskproto.KeyInt, Default: "0", Min: 0, Max: 65536,
		Help: "the most CPU tasks it runs at once; 0: four per CPU"},
	{Section: "adaptive", Name: "tolerance_pct", Type: taskproto.KeyInt, Default: "150", Min: 100, Max: 10000,
		Help: "a CPU task running longer than this share of the quickest run of its kind and size says: fewer at once"},
	{Section: "adaptive", Name: "max_queue_ms", Type: taskproto.KeyInt, Default: "10", Min: 0, Max: 60000,
		Help: "once the oldest waiting task has waited this long, new tasks are refused with overloaded"},
	{Section: "adaptive", Name: "queue_size", Type: taskproto.KeyInt, Default: "1024", Min: 1, Max: 10_000_000,
		Help: "tasks waiting for a slot, at most (beyond: overloaded)"},
}

// maxBaselines bounds the quickest runs remembered, one per kind and size.
const maxBaselines = 256

// Adaptive runs CPU tasks (fib, cpu, io) on goroutines, as many at once as
// an adaptive limit allows: the limit grows while the slots are all in use
// and tasks run as fast as they do unloaded, and shrinks when they run
// slower than tolerance_pct of that (additive increase, multiplicative
// decrease, internal/limit). Tasks beyond the limit wait in arrival order;
// once the oldest has waited max_queue_ms, new tasks are refused with
// overloaded (CoDel's "standing queue" signal), so that under overload the
// latency of what is accepted stays bounded instead of growing with the
// queue. Sleeps and noops take no slot: they run on their own timers.
type Adaptive struct {
	runner    tasks.Runner
	limit     *limit.AIMD
	tolerance float64
	maxWait   time.Duration
	queueSize int

	mu                        sync.Mutex
	running                   int       // CPU tasks running
	waiting                   list.List // of *job, in arrival order
	closed                    bool
	quickest                  map[taskproto.Task]time.Duration
	completed, failed, others int64 // others: sleeps and noops running
	wg                        sync.WaitGroup
}

// job is a task from Submit to its answer.
type job struct {
	ctx      context.Context
	task     taskproto.Task
	done     taskproto.Done
	enqueued time.Time
	place    *list.Element // in waiting; nil once taken out
	stop     func() bool   // unregisters the answer on ctx's end
}

// New builds the strategy from its keys.
func New(cfg taskproto.Config) (*Adaptive, error) {
	lo, hi := int(cfg.Int("adaptive.min_concurrency")), int(cfg.Int("adaptive.max_concurrency"))
	if hi == 0 {
		hi = 4 * runtime.NumCPU()
	}
	if lo > hi {
		return nil, fmt.Errorf("adaptive: min_concurrency %d is above max_concurrency %d", lo, hi)
	}
	return &Adaptive{
		runner:    tasks.Runner{DataDir: cfg.DataDir, LargeFileName: cfg.LargeFileName},
		limit:     limit.New(lo, runtime.NumCPU(), hi, 0),
		tolerance: float64(cfg.Int("adaptive.tolerance_pct")) / 100,
		maxWait:   time.Duration(cfg.Int("adaptive.max_queue_ms")) * time.Millisecond,
		queueSize: int(cfg.Int("adaptive.queue_size")),
		quickest:  map[taskproto.Task]time.Duration{},
	}, nil
}

// Submit runs t at once if a slot is free, queues it, or sheds it.
func (a *Adaptive) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	j := &job{ctx: ctx, task: t, done: done, enqueued: time.Now()}
	a.mu.Lock()
	switch {
	case a.closed:
		a.mu.Unlock()
		done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "adaptive strategy is closing"))
	case !tasks.UsesCPU(t.Kind):
		a.others++
		a.start(j, 0)
		a.mu.Unlock()
	case a.waiting.Len() == 0 && a.running < a.limit.Limit():
		a.running++
		a.start(j, 0)
		a.mu.Unlock()
	case a.waiting.Len() >= a.queueSize:
		a.mu.Unlock()
		done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeOverloaded, "%d tasks wait already; retry later", a.queueSize))
	case a.waiting.Len() > 0 && time.Since(a.waiting.Front().Value.(*job).enqueued) > a.maxWait:
		a.mu.Unlock()
		done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeOverloaded,
			"tasks wait more than max_queue_ms (%v) for a slot; retry later", a.maxWait))
	default:
		j.place = a.waiting.PushBack(j)
		j.stop = context.AfterFunc(ctx, func() { a.abandon(j) })
		a.mu.Unlock()
	}
}

// start runs j on a goroutine of its own; a.mu is held.
func (a *Adaptive) start(j *job, waited time.Duration) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		began := time.Now()
		v, err := a.runner.Run(j.ctx, j.task)
		ran := time.Since(began)
		j.done(taskproto.Result{Value: v, Worker: "adaptive", Queue: waited, Run: ran}, err)
		a.finished(j.task, ran, err)
	}()
}

// finished counts a task, feeds the limit, and starts what now fits.
func (a *Adaptive) finished(t taskproto.Task, ran time.Duration, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.failed++
	} else {
		a.completed++
	}
	if !tasks.UsesCPU(t.Kind) {
		a.others--
		return
	}
	saturated := a.running >= a.limit.Limit()
	a.running--
	if err == nil {
		a.limit.Observe(a.slowdown(t, ran), saturated)
	}
	for a.waiting.Len() > 0 && a.running < a.limit.Limit() {
		j := a.waiting.Remove(a.waiting.Front()).(*job)
		j.place = nil
		if !j.stop() { // its ctx ended: abandon answers it
			continue
		}
		a.running++
		a.start(j, time.Since(j.enqueued))
	}
}

// slowdown is how much longer t ran than tolerance times its quickest run
// (of the same kind and size); 0 when it was no slower. a.mu is held.
func (a *Adaptive) slowdown(t taskproto.Task, ran time.Duration) time.Duration {
	q, ok := a.quickest[t]
	if !ok || ran < q {
		if !ok && len(a.quickest) >= maxBaselines {
			clear(a.quickest)
		}
		q = ran
	} else {
		q += (ran - q) / 256 // drifts up slowly, should the machine itself slow down
	}
	a.quickest[t] = q
	return max(ran-time.Duration(float64(q)*a.tolerance), 0)
}

// abandon answers a waiting task whose context ended. Whoever takes a job
// out of waiting calls j.stop first: false means abandon runs, and it
// alone answers the job.
func (a *Adaptive) abandon(j *job) {
	a.mu.Lock()
	if j.place != nil {
		a.waiting.Remove(j.place)
		j.place = nil
	}
	a.failed++
	a.mu.Unlock()
	j.done(taskproto.Result{Queue: time.Since(j.enqueued)}, j.ctx.Err())
}

// Info describes the strategy. It declares no concurrency: it bounds its
// CPU tasks itself, and sheds what waits too long, so the host hands it
// tasks as they come (up to [limits] max_running, a fixed window) instead
// of holding them in a queue of its own.
func (a *Adaptive) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name: "adaptive",
		Description: fmt.Sprintf("CPU tasks at an adaptive concurrency (AIMD on their slowdown, now %d), sheds after %v of waiting",
			a.limit.Limit(), a.maxWait),
	}
}

// Stats are the strategy's counts; Capacity is the limit now.
func (a *Adaptive) Stats(context.Context) (taskproto.Stats, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return taskproto.Stats{
		Running: int64(a.running) + a.others, Queued: int64(a.waiting.Len()),
		Completed: a.completed, Failed: a.failed, Capacity: int64(a.limit.Limit()),
	}, nil
}

// Close refuses what waits and waits for what runs.
func (a *Adaptive) Close() error {
	a.mu.Lock()
	a.closed = true
	var waiting []*job
	for e := a.waiting.Front(); e != nil; e = a.waiting.Front() {
		j := a.waiting.Remove(e).(*job)
		j.place = nil
		waiting = append(waiting, j)
	}
	a.mu.Unlock()
	for _, j := range waiting {
		if j.stop() {
			j.done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "adaptive strategy is closing"))
		}
	}
	a.wg.Wait()
	return nil
}

package strategy

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/wslab/wslab/internal/limit"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// AdaptiveKeys are the keys the adaptive strategy reads.
var AdaptiveKeys = []taskproto.Key{
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
// queue. Sleeps and noops take no slot.
type Adaptive struct {
	runner    tasks.Runner
	limit     *limit.AIMD
	tolerance float64
	maxWait   time.Duration
	queueSize int
	tasks.Meter
	wg sync.WaitGroup

	// waiting's lock guards the fields below too.
	waiting  tasks.Queue
	slots    int // CPU tasks holding a slot
	closed   bool
	quickest map[taskproto.Task]time.Duration
}

// NewAdaptive builds the strategy from its keys.
func NewAdaptive(cfg taskproto.Config) (*Adaptive, error) {
	lo, hi := int(cfg.Int("adaptive.min_concurrency")), int(cfg.Int("adaptive.max_concurrency"))
	if hi == 0 {
		hi = 4 * runtime.NumCPU()
	}
	if lo > hi {
		return nil, fmt.Errorf("adaptive: min_concurrency %d is above max_concurrency %d", lo, hi)
	}
	a := &Adaptive{
		runner:    runnerFor(cfg),
		limit:     limit.New(lo, runtime.NumCPU(), hi, 0),
		tolerance: float64(cfg.Int("adaptive.tolerance_pct")) / 100,
		maxWait:   time.Duration(cfg.Int("adaptive.max_queue_ms")) * time.Millisecond,
		queueSize: int(cfg.Int("adaptive.queue_size")),
		quickest:  map[taskproto.Task]time.Duration{},
	}
	a.waiting.OnDrop = func(j *tasks.Job) {
		a.Queued.Add(-1)
		a.Refuse(j.Done, taskproto.Result{Queue: time.Since(j.Enqueued)}, j.Ctx.Err())
	}
	return a, nil
}

// Submit runs t at once if a slot is free, queues it, or sheds it.
func (a *Adaptive) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	j := tasks.NewJob(ctx, t, done)
	q := &a.waiting
	q.Lock()
	switch {
	case a.closed:
		q.Unlock()
		done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "adaptive strategy is closing"))
	case !tasks.UsesCPU(t.Kind):
		a.start(j, false)
		q.Unlock()
	case q.LenLocked() == 0 && a.slots < a.limit.Limit():
		a.slots++
		a.start(j, true)
		q.Unlock()
	case q.LenLocked() >= a.queueSize:
		q.Unlock()
		done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeOverloaded, "%d tasks wait already; retry later", a.queueSize))
	case q.LenLocked() > 0 && time.Since(q.OldestLocked().Enqueued) > a.maxWait:
		q.Unlock()
		done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeOverloaded,
			"tasks wait more than max_queue_ms (%v) for a slot; retry later", a.maxWait))
	default:
		a.Queued.Add(1)
		q.PushLocked(j)
		q.Unlock()
	}
}

// start runs j on a goroutine of its own, in a slot when slot is set;
// a.waiting.mu is held.
func (a *Adaptive) start(j *tasks.Job, slot bool) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.Run(j.Ctx, a.runner, j.Task, "adaptive", time.Since(j.Enqueued), func(res taskproto.Result, err error) {
			j.Done(res, err)
			if slot {
				a.finished(j.Task, res.Run, err)
			}
		})
	}()
}

// finished frees a CPU task's slot, feeds the limit with how long it ran,
// and starts what now fits.
func (a *Adaptive) finished(t taskproto.Task, ran time.Duration, err error) {
	q := &a.waiting
	q.Lock()
	defer q.Unlock()
	saturated := a.slots >= a.limit.Limit()
	a.slots--
	if err == nil {
		a.limit.Observe(a.slowdown(t, ran), saturated)
	}
	for a.slots < a.limit.Limit() {
		j := q.PopLocked()
		if j == nil {
			break
		}
		a.Queued.Add(-1)
		a.slots++
		a.start(j, true)
	}
}

// slowdown is how much longer t ran than tolerance times its quickest run
// (of the same kind and size); 0 when it was no slower. a.waiting.mu is
// held.
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
	return a.Snapshot(int64(a.limit.Limit())), nil
}

// Close refuses what waits and waits for what runs.
func (a *Adaptive) Close() error {
	a.waiting.Lock()
	a.closed = true
	a.waiting.Unlock()
	for _, j := range a.waiting.Drain() {
		a.Queued.Add(-1)
		j.Done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "adaptive strategy is closing"))
	}
	a.wg.Wait()
	return nil
}

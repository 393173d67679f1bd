package strategy

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

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
	{Section: "adaptive", Name: "target_ms", Type: taskproto.KeyInt, Default: "5", Min: 1, Max: 60000,
		Help: "CoDel's target: a queue whose every task waits at least this long, for a whole interval, is standing, and shedding starts"},
	{Section: "adaptive", Name: "interval_ms", Type: taskproto.KeyInt, Default: "100", Min: 1, Max: 600000,
		Help: "CoDel's interval: how long the queue must stand above target_ms before anything is shed"},
	{Section: "adaptive", Name: "interval_rtts", Type: taskproto.KeyInt, Default: "4", Min: 0, Max: 1000,
		Help: "the queue must also stand this many times the longest wait in it (a waiting client's round trip), so that clients that each send a few tasks and wait for each reply are served; 0: interval_ms alone"},
	{Section: "adaptive", Name: "max_queue_ms", Type: taskproto.KeyInt, Default: "0", Min: 0, Max: 60000,
		Help: "while shedding, a task that has waited longer than this is refused with overloaded as its turn comes; 0: twice target_ms"},
	{Section: "adaptive", Name: "queue_size", Type: taskproto.KeyInt, Default: "1024", Min: 1, Max: 10_000_000,
		Help: "tasks waiting for a slot, at most (beyond: overloaded)"},
}

// maxBaselines bounds the quickest runs remembered, one per kind and size.
const maxBaselines = 256

// Adaptive runs CPU tasks (fib, cpu, io) on goroutines, as many at once as
// an adaptive limit allows: the limit grows while the slots are all in use
// and tasks run as fast as they do unloaded, and shrinks when they run
// slower than tolerance_pct of that (additive increase, multiplicative
// decrease, internal/limit). Tasks beyond the limit wait in arrival order.
// It sheds as CoDel does (see codel): only once every task that left the
// queue for a whole interval had waited target_ms or more, a queue that a
// burst leaves behind and that drains is served however deep it is, and a
// sustained overload is shed by refusing, as their turn comes, the tasks
// that waited longer than max_queue_ms, so that the latency of what is
// accepted stays bounded instead of growing with the queue. Sleeps and
// noops take no slot and are never shed.
type Adaptive struct {
	runner    tasks.Runner
	limit     *limit.AIMD
	tolerance float64
	queueSize int
	log       hclog.Logger
	now       func() time.Time // time.Now; a test's clock in tests
	tasks.Meter
	wg sync.WaitGroup

	// waiting's lock guards the fields below too.
	waiting  tasks.Queue
	codel    codel
	slots    int // CPU tasks holding a slot
	closed   bool
	quickest map[taskproto.Task]time.Duration
}

// NewAdaptive builds the strategy from its keys; log (nil: none) is told
// when shedding starts and stops.
func NewAdaptive(cfg taskproto.Config, log hclog.Logger) (*Adaptive, error) {
	lo, hi := int(cfg.Int("adaptive.min_concurrency")), int(cfg.Int("adaptive.max_concurrency"))
	if hi == 0 {
		hi = 4 * runtime.NumCPU()
	}
	if lo > hi {
		return nil, fmt.Errorf("adaptive: min_concurrency %d is above max_concurrency %d", lo, hi)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ms := func(key string) time.Duration { return time.Duration(cfg.Int("adaptive."+key)) * time.Millisecond }
	a := &Adaptive{
		runner:    runnerFor(cfg),
		limit:     limit.New(lo, runtime.NumCPU(), hi, 0),
		tolerance: float64(cfg.Int("adaptive.tolerance_pct")) / 100,
		queueSize: int(cfg.Int("adaptive.queue_size")),
		log:       log,
		now:       time.Now,
		codel:     newCodel(ms("target_ms"), ms("interval_ms"), int(cfg.Int("adaptive.interval_rtts")), ms("max_queue_ms")),
		quickest:  map[taskproto.Task]time.Duration{},
	}
	a.waiting.OnDrop = func(j *tasks.Job) {
		a.Queued.Add(-1)
		a.Refuse(j.Done, taskproto.Result{Queue: a.now().Sub(j.Enqueued)}, j.Ctx.Err())
	}
	return a, nil
}

// Submit runs t at once if a slot is free and nothing waits, or queues it;
// a full queue (queue_size) refuses it.
func (a *Adaptive) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	now := a.now()
	j := &tasks.Job{Ctx: ctx, Task: t, Done: done, Enqueued: now}
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
		// It leaves an empty queue at once: no queue stands.
		a.leave(now, 0, 0)
		a.slots++
		a.start(j, true)
		q.Unlock()
	case q.LenLocked() >= a.queueSize:
		q.Unlock()
		a.Refuse(done, taskproto.Result{}, taskproto.Errorf(taskproto.CodeOverloaded, "%d tasks wait already; retry later", a.queueSize))
	default:
		a.Queued.Add(1)
		q.PushLocked(j)
		q.Unlock()
	}
}

// leave tells the controller that a task leaves the queue at now after
// waiting wait, with left tasks behind it, and logs a change of its
// state; true: shed it. a.waiting.mu is held.
func (a *Adaptive) leave(now time.Time, wait time.Duration, left int) bool {
	was := a.codel.dropping
	shed := a.codel.leave(now, wait, left)
	switch {
	case !was && a.codel.dropping:
		a.log.Warn("adaptive: the queue stands: shedding tasks that wait too long",
			"min_wait", a.codel.minWait.String(), "target", a.codel.target.String(), "for", a.codel.stood.String(),
			"shed_after", a.codel.shedAfter.String(), "queued", left+1)
	case was && !a.codel.dropping:
		a.log.Info("adaptive: the queue drains by itself: shedding stops", "shed", a.codel.spellShed)
	}
	return shed
}

// start runs j on a goroutine of its own, in a slot when slot is set;
// a.waiting.mu is held.
func (a *Adaptive) start(j *tasks.Job, slot bool) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.Run(j.Ctx, a.runner, j.Task, "adaptive", a.now().Sub(j.Enqueued), func(res taskproto.Result, err error) {
			j.Done(res, err)
			if slot {
				a.finished(j.Task, res.Run, err)
			}
		})
	}()
}

// finished frees a CPU task's slot, feeds the limit with how long it ran,
// and starts what now fits, refusing on the way what the controller
// sheds.
func (a *Adaptive) finished(t taskproto.Task, ran time.Duration, err error) {
	q := &a.waiting
	var shed []*tasks.Job
	q.Lock()
	saturated := a.slots >= a.limit.Limit()
	a.slots--
	if err == nil {
		a.limit.Observe(a.slowdown(t, ran), saturated)
	}
	now := a.now()
	for a.slots < a.limit.Limit() {
		j := q.PopLocked()
		if j == nil {
			break
		}
		a.Queued.Add(-1)
		if a.leave(now, now.Sub(j.Enqueued), q.LenLocked()) {
			shed = append(shed, j)
			continue
		}
		a.slots++
		a.start(j, true)
	}
	q.Unlock()
	for _, j := range shed {
		wait := now.Sub(j.Enqueued)
		a.Refuse(j.Done, taskproto.Result{Queue: wait}, taskproto.Errorf(taskproto.CodeOverloaded,
			"the queue has stood above %v for over %v and this task waited %v (more than %v); retry later",
			a.codel.target, a.codel.interval, wait.Round(time.Microsecond), a.codel.shedAfter))
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
	c := &a.codel
	return taskproto.StrategyInfo{
		Name: "adaptive",
		Description: fmt.Sprintf("CPU tasks at an adaptive concurrency (AIMD on their slowdown, now %d); "+
			"CoDel: once the queue has stood above %v for %v (and %d of its longest waits), tasks that waited over %v are shed",
			a.limit.Limit(), c.target, c.interval, c.rtts, c.shedAfter),
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

// codel is the shedding rule of adaptive: the standing-queue test of CoDel
// (Nichols and Jacobson, RFC 8289) and, once it finds one, the response of
// folly's CoDel for request queues. It reads no clock: each call says when
// it happens, so that tests drive it through time.
//
// The test. Each task's wait is measured as it leaves the queue for a
// slot. While every task leaving has waited target or more, the queue
// stands; it must stand for a whole interval before anything is shed (a
// task that waited less, or that leaves the queue empty, ends the
// standing, as a packet under target or a queue under one MTU does in the
// RFC): a burst that drains within that time is served, however deep.
// CoDel's interval is to be "on the order of the worst-case round trip"
// of the senders, the time they need to react; a client that waits for
// each reply before it sends its next task takes at least its wait in the
// queue per round trip, and a burst of such clients, each sending a few
// tasks, keeps the queue standing for about as many of those waits as it
// has tasks per client (the Python lab's 200 clients × 3 tasks: up to 2.8
// times its longest wait, measured on a shared 2-vCPU VM, where a busy
// machine stretched its standing from 0.1 s to 0.3 s and its waits to
// 0.2 s). So the queue must also stand rtts times the longest wait seen in
// it, up to maxStretch intervals, before it is called standing.
//
// The response. RFC 8289 then drops one packet at a time, at intervals
// that shrink as interval/√count: each drop makes a TCP sender halve its
// rate, so a few drops per round trip empty the queue. A WebSocket client
// that gets overloaded does not slow down (the lab's client sends its next
// task at once; an open-loop one keeps its rate), and the host refills a
// window of up to max_running tasks as fast as they are answered: drops
// at √count/interval would leave the queue standing for seconds. So,
// as folly's Codel does for its servers' request queues ("this
// empirically works better for our services than the codel approach of
// increasingly often dropping packets"), while shedding every task that
// has waited longer than shedAfter (twice target unless set) is refused as
// its turn comes, and the rest are served: the accepted tasks' wait stays
// under shedAfter whatever the overload. Shedding stops once a whole
// interval has passed with nothing to shed: the queue then keeps itself
// short.
type codel struct {
	target, interval time.Duration
	rtts             int
	shedAfter        time.Duration

	// aboveSince is when the queue began to stand: every task that left
	// it since had waited target or more; zero when it does not stand.
	aboveSince time.Time
	longest    time.Duration // the longest of those waits
	minWait    time.Duration // the shortest of them
	stood      time.Duration // how long it had stood when shedding began
	dropping   bool
	lastShed   time.Time // while dropping: the last task shed, or when dropping began
	spellShed  int64     // tasks shed since dropping began
}

func newCodel(target, interval time.Duration, rtts int, shedAfter time.Duration) codel {
	if shedAfter <= 0 {
		shedAfter = 2 * target
	}
	return codel{target: target, interval: interval, rtts: rtts, shedAfter: shedAfter}
}

// maxStretch bounds how far the waits stretch the interval: a queue that
// has stood this many intervals (1 s by default) is standing whatever
// its waits, so that an overload whose waits keep growing (an open-loop
// flood, which they would keep ahead of rtts times themselves) is shed
// within a second.
const maxStretch = 10

// standFor is how long the queue must stand before shedding starts.
func (c *codel) standFor() time.Duration {
	return max(c.interval, min(time.Duration(c.rtts)*c.longest, maxStretch*c.interval))
}

// leave is told that a task leaves the queue at now, after waiting wait,
// with left tasks still waiting behind it; true: shed it instead of
// running it.
func (c *codel) leave(now time.Time, wait time.Duration, left int) bool {
	if c.dropping {
		if wait > c.shedAfter {
			c.lastShed = now
			c.spellShed++
			return true
		}
		if now.Sub(c.lastShed) >= c.interval {
			// A whole interval without a task to shed: the overload is over.
			c.dropping, c.aboveSince = false, time.Time{}
		}
		return false
	}
	if wait < c.target || left == 0 {
		c.aboveSince = time.Time{}
		return false
	}
	if c.aboveSince.IsZero() {
		c.aboveSince, c.longest, c.minWait = now, wait, wait
	}
	c.longest, c.minWait = max(c.longest, wait), min(c.minWait, wait)
	if now.Sub(c.aboveSince) < c.standFor() {
		return false
	}
	c.dropping, c.stood, c.lastShed, c.spellShed = true, now.Sub(c.aboveSince), now, 0
	if wait > c.shedAfter {
		c.spellShed++
		return true
	}
	return false
}

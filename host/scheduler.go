package host

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/limit"
	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/taskproto"
)

// answerGrace is how long the host waits for a strategy to answer a task
// whose context ended (deadline, requester gone, shutdown) before it
// answers the task itself. A strategy that keeps to the Executor contract
// answers long before; the task still holds its place in the strategy's
// window until the strategy does answer.
const answerGrace = time.Second

// Scheduler is the host's admission: it holds the tasks the host has
// accepted and not yet handed to the strategy, and hands them over fairly.
//
// The policy. A strategy is handed at most a window of tasks at once. The
// window adapts (internal/limit): it starts at the strategy's concurrency
// plus [limits] strategy_prefetch (a strategy that declares no bound gets
// [limits] max_running, fixed), grows while the window is full and tasks wait
// inside the strategy less than [limits] strategy_queue_ms, and shrinks
// when they wait longer, between the strategy's concurrency and
// max_running: enough tasks to keep the strategy busy across its hop, and
// no queue inside it that a newcomer would wait behind. The rest wait
// here, each connection's in its own FIFO queue, and are handed over
// round-robin, one task per connection per turn, with
// connections that had nothing waiting served first (the new-flow
// priority of fq_codel, RFC 8290): a client that sends one request at a
// time waits for one free slot, not behind the queues of others. Tasks
// accepted and not yet answered are bounded by [limits] max_queued; past
// it a connection may still queue up to its share (max_queued divided by
// the connections with work outstanding) until twice max_queued, so a few
// connections cannot lock the others out.
//
// The strategy can be replaced while tasks flow (Replace): tasks handed
// over from then on go to the new one, and the replaced one is counted
// until it has answered every task it was handed.
type Scheduler struct {
	// current is the strategy tasks are handed to; written under mu,
	// read without it by those who only look (Current).
	current   atomic.Pointer[servedStrategy]
	window    *limit.AIMD
	maxQueued int
	log       hclog.Logger
	// reply passes a task's outcome on; the server's sends it to the
	// task's connection.
	reply func(t *task, res taskproto.Result, err error, inline bool)

	mu          sync.Mutex
	queued      int // waiting here
	inStrategy  int // handed over, not yet answered by the strategy
	outstanding int // accepted, not yet answered
	active      int // flows with tasks outstanding
	fresh, old  flowList
	pumping     bool // a goroutine is handing tasks over
	repump      bool // more may be handed over: the pumping goroutine looks again
	closed      bool
	idle        chan struct{} // closed when nothing is outstanding, once closed
}

// NewScheduler hands tasks to exec, at most window's limit at once;
// maxQueued bounds the tasks accepted and not yet answered; reply receives
// each task's outcome, once.
func NewScheduler(exec taskproto.Executor, window *limit.AIMD, maxQueued int, reply func(*task, taskproto.Result, error, bool), log hclog.Logger) *Scheduler {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Scheduler{window: window, maxQueued: max(maxQueued, 1), reply: reply, log: log}
	s.current.Store(newServedStrategy(exec, nil))
	return s
}

// servedStrategy is a strategy the scheduler hands tasks to: the current
// one, or one that Replace retired and that still holds tasks.
type servedStrategy struct {
	exec taskproto.Executor
	info taskproto.StrategyInfo // as it was when it began to serve
	// bounded are the kinds the window holds back (the strategy's
	// BoundedKinds); nil: every kind. The others go to the strategy at
	// once: it runs them without a slot, so they would wait nowhere.
	bounded map[string]bool
	// metrics count the answers of the tasks it ran, under its name
	// (nil in the scheduler's own tests).
	metrics *telemetry.HostMetrics

	// Guarded by Scheduler.mu.
	held    int  // tasks handed to it and not yet answered by it
	retired bool // Replace has put another in its place
	// drained is closed once it is retired and holds no task.
	drained chan struct{}
}

func newServedStrategy(exec taskproto.Executor, metrics *telemetry.HostMetrics) *servedStrategy {
	ss := &servedStrategy{exec: exec, info: exec.Info(), metrics: metrics, drained: make(chan struct{})}
	if kinds := ss.info.BoundedKinds; len(kinds) > 0 {
		ss.bounded = map[string]bool{}
		for _, k := range kinds {
			ss.bounded[k] = true
		}
	}
	return ss
}

// Drained is closed once the strategy, retired, has answered every task
// it was handed.
func (ss *servedStrategy) Drained() <-chan struct{} { return ss.drained }

// handLocked counts t as handed to the current strategy and returns it;
// t is submitted to it once s.mu is released.
func (s *Scheduler) handLocked(t *task) *servedStrategy {
	ss := s.current.Load()
	ss.held++
	t.served = ss
	return ss
}

// Current is the strategy tasks are handed to now.
func (s *Scheduler) Current() taskproto.Executor { return s.current.Load().exec }

// currentServed is Current with what the scheduler keeps of it.
func (s *Scheduler) currentServed() *servedStrategy { return s.current.Load() }

// Replace makes next the strategy that tasks are handed to from now on,
// within window (sized for next); the tasks the replaced strategy holds
// stay its own to answer, and count against the window until it does. It
// returns the replaced strategy, whose Drained channel is closed once it
// has answered them all (at once if it holds none).
func (s *Scheduler) Replace(next *servedStrategy, window *limit.AIMD) (replaced *servedStrategy) {
	s.mu.Lock()
	replaced = s.current.Load()
	s.current.Store(next)
	s.window = window
	replaced.retired = true
	if replaced.held == 0 {
		close(replaced.drained)
	}
	s.mu.Unlock()
	s.pump() // the new window may take more
	return replaced
}

// Holding says how many tasks ss holds: handed to it and not yet
// answered by it.
func (s *Scheduler) Holding(ss *servedStrategy) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ss.held
}

// NewWindow is the adaptive window for a strategy of the given
// concurrency. A strategy that declares no bound (0) gets a fixed window of
// maxRunning: it holds the queue of what it cannot run yet, and may shed
// from it (plugins/adaptive), which a window shrinking under that queue's
// wait would take from it.
func NewWindow(concurrency, prefetch, maxRunning int, target time.Duration) *limit.AIMD {
	if concurrency <= 0 {
		return limit.New(maxRunning, maxRunning, maxRunning, target)
	}
	initial := concurrency + prefetch
	return limit.New(concurrency, initial, max(initial, maxRunning), target)
}

// taskState is where a task is in its life; guarded by Scheduler.mu.
type taskState uint8

const (
	stateQueued   taskState = iota // waiting in its flow
	stateRunning                   // handed to the strategy
	stateAnswered                  // its outcome is decided (the strategy may still hold it)
)

// flow is one connection's tasks waiting for the strategy; guarded by
// Scheduler.mu.
type flow struct {
	head, tail  *task
	queued      int
	outstanding int
	listed      bool  // in fresh or old
	next        *flow // in that list
}

type flowList struct{ head, tail *flow }

func (l *flowList) push(f *flow) {
	f.next = nil
	if l.tail == nil {
		l.head = f
	} else {
		l.tail.next = f
	}
	l.tail = f
}

func (l *flowList) pop() *flow {
	f := l.head
	if f != nil {
		l.head = f.next
		if l.head == nil {
			l.tail = nil
		}
		f.next = nil
	}
	return f
}

func (f *flow) pushTask(t *task) {
	t.prev, t.next = f.tail, nil
	if f.tail == nil {
		f.head = t
	} else {
		f.tail.next = t
	}
	f.tail = t
	f.queued++
}

func (f *flow) removeTask(t *task) {
	if t.prev == nil {
		f.head = t.next
	} else {
		t.prev.next = t.next
	}
	if t.next == nil {
		f.tail = t.prev
	} else {
		t.next.prev = t.prev
	}
	t.prev, t.next = nil, nil
	f.queued--
}

// Admit accepts t for its flow and hands it to the strategy as soon as the
// window and the other flows allow; t.ctx, t.task and t.flow must be set.
// It refuses t with overloaded or shutting_down.
func (s *Scheduler) Admit(t *task) *taskproto.Error {
	f := t.flow
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return taskproto.Errorf(taskproto.CodeShuttingDown, "host is shutting down")
	}
	if s.outstanding >= s.maxQueued {
		flows := s.active
		if f.outstanding == 0 {
			flows++
		}
		share := max(1, s.maxQueued/flows)
		if f.outstanding >= share || s.outstanding >= 2*s.maxQueued {
			s.mu.Unlock()
			return taskproto.Errorf(taskproto.CodeOverloaded,
				"host has %d tasks outstanding (max_queued %d) and this connection has its share (%d); retry later",
				s.outstanding, s.maxQueued, share)
		}
	}
	if f.outstanding == 0 {
		s.active++
	}
	f.outstanding++
	s.outstanding++
	t.done = func(res taskproto.Result, err error) { s.finish(t, res, err) }
	if cur := s.current.Load(); cur.bounded != nil && !cur.bounded[t.task.Kind] {
		t.state, t.unbounded, t.submitting = stateRunning, true, true
		ss := s.handLocked(t)
		s.mu.Unlock()
		t.tl.Stamp(taskproto.StageHostSubmit)
		ss.exec.Submit(t.ctx, t.task, t.done)
		s.mu.Lock()
		t.submitting = false
		// Watched only now: most such tasks (noop) are answered inside
		// Submit, and need no watch. A context that ended meanwhile
		// makes the watch fire at once.
		if t.state == stateRunning {
			s.watchLocked(t)
		}
		s.mu.Unlock()
		return nil
	}
	s.watchLocked(t)
	s.queued++
	t.state = stateQueued
	f.pushTask(t)
	if !f.listed {
		f.listed = true
		s.fresh.push(f)
	}
	s.mu.Unlock()
	s.pump()
	return nil
}

// watchLocked makes the end of t's context answer t if the strategy does
// not (expire); the watch runs in a goroutine of its own, after s.mu is
// released.
func (s *Scheduler) watchLocked(t *task) {
	t.stop = context.AfterFunc(t.ctx, func() { s.expire(t) })
}

// unwatch ends the watch of t's context, if it has one; t is answered,
// so its stop is not written any more.
func (t *task) unwatch() {
	if t.stop != nil {
		t.stop()
	}
}

// nextLocked takes the task to hand over next, nil when the window is
// full or nothing waits.
func (s *Scheduler) nextLocked() *task {
	if s.inStrategy >= s.window.Limit() {
		return nil
	}
	var f *flow
	for {
		if f = s.fresh.pop(); f == nil {
			if f = s.old.pop(); f == nil {
				return nil
			}
		}
		if f.queued > 0 {
			break
		}
		f.listed = false // emptied while listed (its tasks expired or were dropped)
	}
	t := f.head
	f.removeTask(t)
	if f.queued > 0 {
		s.old.push(f)
	} else {
		f.listed = false
	}
	s.queued--
	s.inStrategy++
	t.state = stateRunning
	return t
}

// pump hands tasks over while the window allows. One goroutine at a time
// hands over, so tasks reach the strategy in the order nextLocked chose;
// another that finds it busy leaves the work to it.
func (s *Scheduler) pump() {
	s.mu.Lock()
	if s.pumping {
		s.repump = true
		s.mu.Unlock()
		return
	}
	s.pumping = true
	for {
		t := s.nextLocked()
		if t == nil {
			if !s.repump {
				break
			}
			s.repump = false
			continue
		}
		t.submitting = true
		ss := s.handLocked(t)
		s.mu.Unlock()
		t.tl.Stamp(taskproto.StageHostSubmit)
		ss.exec.Submit(t.ctx, t.task, t.done)
		s.mu.Lock()
		t.submitting = false
	}
	s.pumping = false
	s.mu.Unlock()
}

// finish takes the strategy's answer for t and passes it to t's
// connection, unless the host has answered t already.
func (s *Scheduler) finish(t *task, res taskproto.Result, err error) {
	s.mu.Lock()
	if !t.unbounded {
		s.window.Observe(res.Queue, s.inStrategy >= s.window.Limit())
		s.inStrategy--
	}
	ss := t.served // set when t was handed over
	ss.held--
	if ss.retired && ss.held == 0 {
		close(ss.drained)
	}
	if t.state == stateAnswered { // answered by overdue: the slot is all that was left
		s.mu.Unlock()
		s.pump()
		return
	}
	t.state = stateAnswered
	// Answered inside Submit: this goroutine handed the task over (the
	// connection's reader, most often) and may write the reply itself.
	inline := t.submitting
	s.mu.Unlock()
	t.unwatch()
	s.pump()
	s.answerFrom(t, res, err, inline)
}

// answer passes t's outcome to its connection, and only then counts t as
// answered: Shutdown, waiting for every task to be answered, closes the
// connections after their replies are queued.
func (s *Scheduler) answer(t *task, res taskproto.Result, err error) {
	s.answerFrom(t, res, err, false)
}

// answerFrom is answer; inline says the reply may be written by this
// goroutine rather than by a writer goroutine of the connection's.
func (s *Scheduler) answerFrom(t *task, res taskproto.Result, err error, inline bool) {
	s.reply(t, res, err, inline)
	s.mu.Lock()
	s.releaseLocked(t)
	s.mu.Unlock()
}

// releaseLocked counts t, whose state is stateAnswered, out of what is
// outstanding.
func (s *Scheduler) releaseLocked(t *task) {
	s.outstanding--
	t.flow.outstanding--
	if t.flow.outstanding == 0 {
		s.active--
	}
	if s.closed && s.outstanding == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// expire acts on the end of t's context: a queued task is answered at
// once; a running one is the strategy's to answer, within answerGrace.
func (s *Scheduler) expire(t *task) {
	s.mu.Lock()
	switch t.state {
	case stateQueued:
		t.flow.removeTask(t) // an emptied flow leaves its list when next reached
		s.queued--
		t.state = stateAnswered
		s.mu.Unlock()
		s.answer(t, taskproto.Result{Queue: time.Since(t.arrived)}, t.ctx.Err())
		return
	case stateRunning:
		time.AfterFunc(answerGrace, func() { s.overdue(t) })
	}
	s.mu.Unlock()
}

// overdue answers a running task the strategy has not answered within
// answerGrace of its context's end.
func (s *Scheduler) overdue(t *task) {
	s.mu.Lock()
	if t.state != stateRunning {
		s.mu.Unlock()
		return
	}
	t.state = stateAnswered
	s.mu.Unlock()
	s.log.Warn("strategy did not answer a stopped task in time; answering it",
		append(t.LogArgs(), "task", t.task.Kind, "grace", answerGrace)...)
	s.answer(t, taskproto.Result{Queue: time.Since(t.arrived)}, t.ctx.Err())
}

// Drop forgets the queued tasks of a flow whose connection has ended;
// the caller then cancels the running ones through their contexts.
func (s *Scheduler) Drop(f *flow) {
	s.mu.Lock()
	var dropped []*task
	for t := f.head; t != nil; t = f.head {
		f.removeTask(t)
		s.queued--
		t.state = stateAnswered
		s.releaseLocked(t)
		dropped = append(dropped, t)
	}
	s.mu.Unlock()
	for _, t := range dropped {
		t.unwatch()
	}
}

// Counts says how many tasks wait here, are with the strategy, and are
// accepted and unanswered, and what the window is.
func (s *Scheduler) Counts() (queued, inStrategy, outstanding, window int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued, s.inStrategy, s.outstanding, s.window.Limit()
}

// Close refuses new tasks and returns a channel closed once every accepted
// task has been answered.
func (s *Scheduler) Close() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	ch := make(chan struct{})
	if s.outstanding == 0 {
		close(ch)
	} else {
		s.idle = ch
	}
	return ch
}

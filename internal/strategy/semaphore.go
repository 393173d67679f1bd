package strategy

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// slots lets at most limit jobs run at once; the others wait in the order
// they arrived, and a job whose context ends while it waits is dropped.
type slots struct {
	limit int64
	run   func(*tasks.Job) // runs a job in a slot it holds, in a goroutine of its own

	waiting tasks.Queue // its lock also guards free
	free    int64
}

func newSlots(limit int64, run func(*tasks.Job), dropped func(*tasks.Job)) *slots {
	s := &slots{limit: limit, free: limit, run: run}
	s.waiting.OnDrop = dropped
	return s
}

// submit starts j in a free slot, or puts it in line.
func (s *slots) submit(j *tasks.Job) {
	q := &s.waiting
	q.Lock()
	if s.free > 0 && q.LenLocked() == 0 {
		s.free--
		q.Unlock()
		go s.runHolding(j)
		return
	}
	q.PushLocked(j) // no limit of its own: the host bounds what it hands over
	q.Unlock()
}

// runHolding runs j in a slot it holds, then the jobs waiting, one after
// another in the same goroutine, and frees the slot when none is left: a
// busy slot costs no goroutine per job.
func (s *slots) runHolding(j *tasks.Job) {
	q := &s.waiting
	for j != nil {
		s.run(j)
		q.Lock()
		if j = q.PopLocked(); j == nil {
			s.free++
		}
		q.Unlock()
	}
}

// Semaphore lets at most N tasks run at once; the others wait in the order
// they arrived, as asyncio.Semaphore's waiters do.
type Semaphore struct {
	runner tasks.Runner
	worker string
	tasks.Meter
	slots *slots
}

// SemaphoreKeys are the keys the semaphore strategy reads: the Python
// lab's own.
var SemaphoreKeys = []taskproto.Key{
	{Section: "other", Name: "asyn_semaphore", Type: taskproto.KeyInt, Default: "5", Min: 1, Max: 1_000_000,
		Help: "tasks that run at once; the rest wait in arrival order (asyncio.Semaphore)"},
}

// NewSemaphore builds the strategy from [other] asyn_semaphore.
func NewSemaphore(cfg taskproto.Config) (*Semaphore, error) {
	n := cfg.Int("other.asyn_semaphore")
	if n < 1 {
		return nil, fmt.Errorf("semaphore strategy: asyn_semaphore must be at least 1, got %d", n)
	}
	s := &Semaphore{runner: runnerFor(cfg), worker: fmt.Sprintf("p%d", os.Getpid())}
	s.slots = newSlots(n,
		func(j *tasks.Job) { s.Run(j.Ctx, s.runner, j.Task, s.worker, time.Since(j.Enqueued), j.Done) },
		func(j *tasks.Job) {
			s.Refuse(j.Done, taskproto.Result{Worker: s.worker, Queue: time.Since(j.Enqueued)}, j.Ctx.Err())
		})
	return s, nil
}

// Submit takes a slot and starts t, or puts it in line.
func (s *Semaphore) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	s.slots.submit(tasks.NewJob(ctx, t, done))
}

func (s *Semaphore) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name:        "semaphore",
		Description: fmt.Sprintf("at most %d tasks run at once, the rest wait in FIFO order", s.slots.limit),
		Concurrency: int(s.slots.limit),
		PID:         os.Getpid(),
	}
}

func (s *Semaphore) Stats(context.Context) (taskproto.Stats, error) {
	st := s.Snapshot(s.slots.limit)
	st.Queued = int64(s.slots.waiting.Len())
	return st, nil
}

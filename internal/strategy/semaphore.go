package strategy

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// Semaphore lets at most N tasks run at once; the others wait in the order
// they arrived, as asyncio.Semaphore's waiters do.
type Semaphore struct {
	limit  int64
	runner tasks.Runner
	worker string
	meter

	waiting jobQueue // guarded by its own lock, which also guards free
	free    int64
}

// NewSemaphore builds the strategy from [other] asyn_semaphore.
func NewSemaphore(cfg taskproto.Config) (*Semaphore, error) {
	if cfg.Semaphore < 1 {
		return nil, fmt.Errorf("semaphore strategy: asyn_semaphore must be at least 1, got %d", cfg.Semaphore)
	}
	s := &Semaphore{
		limit:  cfg.Semaphore,
		free:   cfg.Semaphore,
		runner: runnerFor(cfg),
		worker: fmt.Sprintf("p%d", os.Getpid()),
	}
	s.waiting.dropped = func(j *job) {
		s.refuse(j.done, taskproto.Result{Worker: s.worker, Queue: time.Since(j.enqueued)}, j.ctx.Err())
	}
	return s, nil
}

// Submit takes a slot and starts t, or puts it in line.
func (s *Semaphore) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	j := &job{ctx: ctx, task: t, done: done, enqueued: time.Now()}
	q := &s.waiting
	q.mu.Lock()
	if s.free > 0 && q.jobs.Len() == 0 {
		s.free--
		q.mu.Unlock()
		go s.runHolding(j)
		return
	}
	q.pushLocked(j) // no limit of its own: the host bounds what it hands over
	q.mu.Unlock()
}

// runHolding runs j in a slot it holds, then passes the slot on.
func (s *Semaphore) runHolding(j *job) {
	s.run(j.ctx, s.runner, j.task, s.worker, time.Since(j.enqueued), j.done)
	s.waiting.mu.Lock()
	s.free++
	s.waiting.mu.Unlock()
	s.grant()
}

// grant hands free slots to the first in line.
func (s *Semaphore) grant() {
	q := &s.waiting
	for {
		q.mu.Lock()
		if s.free == 0 {
			q.mu.Unlock()
			return
		}
		j := q.popLocked()
		if j == nil {
			q.mu.Unlock()
			return
		}
		s.free--
		q.mu.Unlock()
		go s.runHolding(j)
	}
}

func (s *Semaphore) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name:        "semaphore",
		Description: fmt.Sprintf("at most %d tasks run at once, the rest wait in FIFO order", s.limit),
		Concurrency: int(s.limit),
		PID:         os.Getpid(),
	}
}

func (s *Semaphore) Stats(context.Context) (taskproto.Stats, error) {
	st := s.stats(s.limit)
	st.Queued = int64(s.waiting.len())
	return st, nil
}

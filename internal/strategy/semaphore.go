package strategy

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// Semaphore lets at most N tasks run at once; the others wait in FIFO
// order, as asyncio.Semaphore does. x/sync's Weighted semaphore serves
// waiters in arrival order and lets a waiter leave when its context ends.
type Semaphore struct {
	sem    *semaphore.Weighted
	limit  int64
	runner tasks.Runner
	worker string
	meter
}

// NewSemaphore builds the strategy from [other] asyn_semaphore.
func NewSemaphore(cfg taskproto.Config) (*Semaphore, error) {
	if cfg.Semaphore < 1 {
		return nil, fmt.Errorf("semaphore strategy: asyn_semaphore must be at least 1, got %d", cfg.Semaphore)
	}
	return &Semaphore{
		sem:    semaphore.NewWeighted(cfg.Semaphore),
		limit:  cfg.Semaphore,
		runner: runnerFor(cfg),
		worker: fmt.Sprintf("p%d", os.Getpid()),
	}, nil
}

func (s *Semaphore) Execute(ctx context.Context, t taskproto.Task) (taskproto.Result, error) {
	res := taskproto.Result{Worker: s.worker}
	s.queued.Add(1)
	start := time.Now()
	err := s.sem.Acquire(ctx, 1)
	res.Queue = time.Since(start)
	s.queued.Add(-1)
	if err != nil {
		s.failed.Add(1)
		return res, err
	}
	defer s.sem.Release(1)
	err = s.run(ctx, s.runner, t, &res)
	return res, err
}

func (s *Semaphore) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name:        "semaphore",
		Description: fmt.Sprintf("at most %d tasks run at once, the rest wait in FIFO order", s.limit),
		Concurrency: int(s.limit),
		PID:         os.Getpid(),
	}
}

func (s *Semaphore) Stats(context.Context) (taskproto.Stats, error) { return s.stats(s.limit), nil }

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
	sem    *fifoSemaphore
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
		sem:    newFIFOSemaphore(cfg.Semaphore),
		limit:  cfg.Semaphore,
		runner: runnerFor(cfg),
		worker: fmt.Sprintf("p%d", os.Getpid()),
	}, nil
}

func (s *Semaphore) Execute(ctx context.Context, t taskproto.Task) (taskproto.Result, error) {
	return s.Submit(ctx, t)()
}

// Submit takes a slot or a place in line at once, in call order.
func (s *Semaphore) Submit(ctx context.Context, t taskproto.Task) func() (taskproto.Result, error) {
	start := time.Now()
	ready, place := s.sem.join()
	return func() (taskproto.Result, error) {
		res := taskproto.Result{Worker: s.worker}
		select {
		case <-ready:
		case <-ctx.Done():
			if !s.sem.leave(ready, place) {
				s.sem.release() // the slot came as the context ended
			}
			res.Queue = time.Since(start)
			s.failed.Add(1)
			return res, ctx.Err()
		}
		defer s.sem.release()
		res.Queue = time.Since(start)
		err := s.run(ctx, s.runner, t, &res)
		return res, err
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
	st.Queued = int64(s.sem.waiting())
	return st, nil
}

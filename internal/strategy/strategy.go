// Package strategy holds the concurrency strategies that run tasks inside
// one process: the host's built-in inproc baseline, and the semaphore, pool
// and adaptive strategies that the plugins of the same names serve.
package strategy

import (
	"context"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

func runnerFor(cfg taskproto.Config) tasks.Runner {
	return tasks.Runner{DataDir: cfg.DataDir, LargeFileName: cfg.LargeFileName}
}

// Inproc runs every task in the host's process, in a goroutine of its own:
// the baseline that every isolation strategy is measured against. Waits
// (sleep, noop) start at once, with no bound of its own (the host's
// max_running bounds what it hands over); work that keeps a core busy
// (tasks.UsesCPU) runs on at most as many goroutines at once as there are
// cores, in arrival order, so that it uses every core and the host, which
// keeps a few spare Ps for its own I/O (see host.SpareProcs), is still
// served: without that gate a flood of CPU-bound tasks holds every P and
// the host's readers wait for the Go scheduler for hundreds of
// milliseconds.
type Inproc struct {
	runner tasks.Runner
	tasks.Meter
	cpu *slots // gates tasks.UsesCPU work
}

// NewInproc returns the built-in baseline strategy.
func NewInproc(cfg taskproto.Config) *Inproc {
	s := &Inproc{runner: runnerFor(cfg)}
	s.cpu = newSlots(int64(runtime.NumCPU()),
		func(j *tasks.Job) { s.Run(j.Ctx, s.runner, j.Task, "inproc", time.Since(j.Enqueued), j.Done) },
		func(j *tasks.Job) {
			s.Refuse(j.Done, taskproto.Result{Worker: "inproc", Queue: time.Since(j.Enqueued)}, j.Ctx.Err())
		})
	return s
}

// Submit starts t at once, or once a core is free for it. A noop is done
// in the caller's goroutine and a sleep is a timer: a wait holds no
// goroutine.
func (s *Inproc) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	switch {
	case tasks.UsesCPU(t.Kind):
		s.cpu.submit(tasks.NewJob(ctx, t, done))
	case t.Kind == taskproto.KindSleep:
		s.sleep(ctx, time.Duration(t.N)*time.Millisecond, done)
	default:
		s.Run(ctx, s.runner, t, "inproc", 0, done)
	}
}

// sleep answers after d, or when ctx ends, whichever comes first.
func (s *Inproc) sleep(ctx context.Context, d time.Duration, done taskproto.Done) {
	start := time.Now()
	s.Running.Add(1)
	var once sync.Once
	answer := func(err error) {
		once.Do(func() {
			s.Running.Add(-1)
			res := taskproto.Result{Worker: "inproc", Run: time.Since(start)}
			if err != nil {
				s.Failed.Add(1)
				done(res, err)
				return
			}
			s.Completed.Add(1)
			res.Value = tasks.SleepDone
			done(res, nil)
		})
	}
	if err := ctx.Err(); err != nil {
		answer(err)
		return
	}
	var (
		mu    sync.Mutex
		timer *time.Timer
	)
	stopWatch := context.AfterFunc(ctx, func() {
		mu.Lock()
		t := timer
		mu.Unlock()
		if t == nil || t.Stop() {
			answer(ctx.Err())
		}
	})
	mu.Lock()
	timer = time.AfterFunc(d, func() {
		stopWatch()
		answer(nil)
	})
	mu.Unlock()
}

func (s *Inproc) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{Name: "inproc", Description: "tasks run in the host process: waits at once, CPU work one per core",
		Concurrency: int(s.cpu.limit), BoundedKinds: tasks.CPUKinds, PID: os.Getpid()}
}

func (s *Inproc) Stats(context.Context) (taskproto.Stats, error) {
	st := s.Snapshot(s.cpu.limit) // what bounds its CPU kinds
	st.Queued = int64(s.cpu.waiting.Len())
	return st, nil
}

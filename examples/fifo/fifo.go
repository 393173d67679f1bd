package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// Keys are the keys of the [fifo] section the strategy reads; the host
// checks a configuration file's values against them before New sees them.
var Keys = []taskproto.Key{
	{Section: "fifo", Name: "workers", Type: taskproto.KeyInt, Default: "4", Min: 1, Max: 1024,
		Help: "goroutines running tasks"},
	{Section: "fifo", Name: "queue_size", Type: taskproto.KeyInt, Default: "256", Min: 1, Max: 1_000_000,
		Help: "tasks waiting for a worker at most (beyond: overloaded)"},
}

// FIFO runs tasks on [fifo] workers goroutines, oldest first; a task that
// finds queue_size tasks waiting is refused with overloaded at once.
type FIFO struct {
	runner  tasks.Runner
	workers int
	limit   int
	tasks.Meter

	queue  tasks.Queue
	ready  *sync.Cond // on the queue's lock: a task was queued, or closed
	closed bool       // guarded by the queue's lock
	wg     sync.WaitGroup
}

// New builds the strategy from cfg and starts its workers; Close stops
// them.
func New(cfg taskproto.Config) (*FIFO, error) {
	f := &FIFO{
		runner:  tasks.Runner{DataDir: cfg.DataDir, LargeFileName: cfg.LargeFileName},
		workers: int(cfg.Int("fifo.workers")),
		limit:   int(cfg.Int("fifo.queue_size")),
	}
	f.queue.OnDrop = func(j *tasks.Job) { // its caller gave up while it waited
		f.Queued.Add(-1)
		f.Refuse(j.Done, taskproto.Result{Queue: time.Since(j.Enqueued)}, j.Ctx.Err())
	}
	f.ready = sync.NewCond(&f.queue)
	for i := range f.workers {
		f.wg.Add(1)
		go f.work(fmt.Sprintf("f%d", i))
	}
	return f, nil
}

func (f *FIFO) work(name string) {
	defer f.wg.Done()
	for {
		f.queue.Lock()
		for f.queue.LenLocked() == 0 && !f.closed {
			f.ready.Wait()
		}
		if f.closed { // Close answers what is left
			f.queue.Unlock()
			return
		}
		j := f.queue.PopLocked()
		f.queue.Unlock()
		f.Queued.Add(-1)
		f.Run(j.Ctx, f.runner, j.Task, name, time.Since(j.Enqueued), j.Done)
	}
}

// Submit queues t behind the tasks before it, or refuses it.
func (f *FIFO) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	var refused error
	f.queue.Lock()
	switch {
	case f.closed:
		refused = taskproto.Errorf(taskproto.CodeShuttingDown, "fifo is closed")
	case f.queue.LenLocked() >= f.limit:
		refused = taskproto.Errorf(taskproto.CodeOverloaded, "%d tasks wait already; retry later", f.limit)
	default:
		f.queue.PushLocked(tasks.NewJob(ctx, t, done))
		f.Queued.Add(1)
		f.ready.Signal()
	}
	f.queue.Unlock()
	if refused != nil {
		f.Refuse(done, taskproto.Result{}, refused)
	}
}

// Info describes the strategy to the host: Concurrency is how many tasks
// run at once at most, which the conformance kit checks.
func (f *FIFO) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name:        "fifo",
		Description: fmt.Sprintf("%d workers, a queue of %d", f.workers, f.limit),
		Concurrency: f.workers,
		PID:         os.Getpid(),
	}
}

// Stats are the meter's counts.
func (f *FIFO) Stats(context.Context) (taskproto.Stats, error) {
	return f.Snapshot(int64(f.workers)), nil
}

// Close stops the workers once their current tasks end and answers the
// tasks still waiting with shutting_down.
func (f *FIFO) Close() error {
	f.queue.Lock()
	f.closed = true
	f.ready.Broadcast()
	f.queue.Unlock()
	f.wg.Wait()
	for _, j := range f.queue.Drain() {
		f.Queued.Add(-1)
		f.Refuse(j.Done, taskproto.Result{Queue: time.Since(j.Enqueued)},
			taskproto.Errorf(taskproto.CodeShuttingDown, "fifo closed before the task ran"))
	}
	return nil
}

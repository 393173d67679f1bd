package strategy

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// Pool runs tasks on a fixed set of goroutines fed from a bounded queue.
// A task that finds the queue full is refused with overloaded at once, so
// that a burst shows up as errors rather than as unbounded memory.
type Pool struct {
	workers int
	runner  tasks.Runner
	tasks.Meter

	queue  tasks.Queue
	limit  int        // jobs waiting for a goroutine at most
	ready  *sync.Cond // on queue.mu: a job was queued, or the pool closed
	free   int        // goroutines not running a job; guarded by queue.mu
	closed bool       // guarded by queue.mu
	wg     sync.WaitGroup
}

// PoolKeys are the keys the pool strategy reads.
var PoolKeys = []taskproto.Key{
	{Section: "pool", Name: "workers", Type: taskproto.KeyInt, Default: "0", Min: 0, Max: 65536,
		Help: "goroutines running tasks; 0: the number of CPUs"},
	{Section: "pool", Name: "queue_size", Type: taskproto.KeyInt, Default: "1024", Min: 1, Max: 10_000_000,
		Help: "tasks waiting for a free goroutine (beyond: overloaded)"},
}

// NewPool builds the strategy from [pool] workers (0: the number of CPUs)
// and queue_size, and starts its goroutines. Close stops them.
func NewPool(cfg taskproto.Config) (*Pool, error) {
	return NewPoolOf(int(cfg.Int("pool.workers")), int(cfg.Int("pool.queue_size")), cfg)
}

// NewPoolOf is NewPool with its sizes given rather than read from cfg's
// settings, for a caller whose own keys size it (a multiproc worker).
func NewPoolOf(workers, queueSize int, cfg taskproto.Config) (*Pool, error) {
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	if workers < 0 || queueSize < 1 {
		return nil, fmt.Errorf("pool strategy: need workers ≥ 0 and queue_size ≥ 1, got %d and %d", workers, queueSize)
	}
	p := &Pool{workers: workers, runner: runnerFor(cfg), limit: queueSize, free: workers}
	p.queue.OnDrop = func(j *tasks.Job) {
		p.Queued.Add(-1)
		p.Refuse(j.Done, taskproto.Result{Queue: time.Since(j.Enqueued)}, j.Ctx.Err())
	}
	p.ready = sync.NewCond(&p.queue)
	for i := range workers {
		p.wg.Add(1)
		go p.work(fmt.Sprintf("g%d", i))
	}
	return p, nil
}

func (p *Pool) work(name string) {
	defer p.wg.Done()
	q := &p.queue
	for {
		q.Lock()
		for q.LenLocked() == 0 && !p.closed {
			p.ready.Wait()
		}
		if p.closed { // what is left is Close's to fail
			q.Unlock()
			return
		}
		j := q.PopLocked()
		p.free--
		q.Unlock()
		p.Queued.Add(-1)
		p.Run(j.Ctx, p.runner, j.Task, name, time.Since(j.Enqueued), j.Done)
		q.Lock()
		p.free++
		q.Unlock()
	}
}

// Submit queues t, in call order, or refuses it when the queue is full or
// the pool closed.
func (p *Pool) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	j := tasks.NewJob(ctx, t, done)
	q := &p.queue
	q.Lock()
	var err error
	switch {
	case p.closed:
		err = taskproto.Errorf(taskproto.CodeShuttingDown, "pool is closed")
	case q.LenLocked() >= p.limit+p.free: // a free goroutine takes its job at once
		err = taskproto.Errorf(taskproto.CodeOverloaded,
			"pool queue is full (%d tasks waiting for %d goroutines); retry later", p.limit, p.workers)
	default:
		q.PushLocked(j)
		p.Queued.Add(1)
		p.ready.Signal()
	}
	q.Unlock()
	if err != nil {
		p.Refuse(done, taskproto.Result{}, err)
	}
}

func (p *Pool) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name:        "pool",
		Description: fmt.Sprintf("%d goroutines fed from a queue of %d", p.workers, p.limit),
		Concurrency: p.workers,
		PID:         os.Getpid(),
	}
}

func (p *Pool) Stats(context.Context) (taskproto.Stats, error) {
	return p.Snapshot(int64(p.workers)), nil
}

// Close stops the goroutines once they finish their current task, and
// fails the tasks still queued with shutting_down.
func (p *Pool) Close() error {
	q := &p.queue
	q.Lock()
	if p.closed {
		q.Unlock()
		return nil
	}
	p.closed = true
	p.ready.Broadcast()
	q.Unlock()
	p.wg.Wait()
	for _, j := range q.Drain() {
		p.Queued.Add(-1)
		p.Refuse(j.Done, taskproto.Result{Queue: time.Since(j.Enqueued)},
			taskproto.Errorf(taskproto.CodeShuttingDown, "pool closed before the task ran"))
	}
	return nil
}

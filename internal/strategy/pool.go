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
	queue   chan *job
	workers int
	runner  tasks.Runner
	stop    chan struct{}
	wg      sync.WaitGroup
	meter

	mu     sync.Mutex // orders enqueue against Close
	closed bool
}

type job struct {
	ctx      context.Context
	task     taskproto.Task
	enqueued time.Time
	done     chan taskproto.Result // buffered: a worker never blocks on it
	err      error
}

// NewPool builds the strategy from [pool] workers (0: the number of CPUs)
// and queue_size, and starts its goroutines. Close stops them.
func NewPool(cfg taskproto.Config) (*Pool, error) {
	workers := int(cfg.Workers)
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	if workers < 0 || cfg.QueueSize < 1 {
		return nil, fmt.Errorf("pool strategy: need workers ≥ 0 and queue_size ≥ 1, got %d and %d", cfg.Workers, cfg.QueueSize)
	}
	p := &Pool{
		queue:   make(chan *job, cfg.QueueSize),
		workers: workers,
		runner:  runnerFor(cfg),
		stop:    make(chan struct{}),
	}
	for i := range workers {
		p.wg.Add(1)
		go p.work(fmt.Sprintf("g%d", i))
	}
	return p, nil
}

func (p *Pool) work(name string) {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case j := <-p.queue:
			p.queued.Add(-1)
			res := taskproto.Result{Worker: name, Queue: time.Since(j.enqueued)}
			if err := j.ctx.Err(); err != nil {
				p.failed.Add(1) // its caller has gone: do not run it
				j.err = err
			} else {
				j.err = p.run(j.ctx, p.runner, j.task, &res)
			}
			j.done <- res
		}
	}
}

func (p *Pool) Execute(ctx context.Context, t taskproto.Task) (taskproto.Result, error) {
	return p.Submit(ctx, t)()
}

// Submit queues t at once, in call order, or refuses it when the queue is
// full or the pool closed.
func (p *Pool) Submit(ctx context.Context, t taskproto.Task) func() (taskproto.Result, error) {
	j := &job{ctx: ctx, task: t, enqueued: time.Now(), done: make(chan taskproto.Result, 1)}
	if err := p.enqueue(j); err != nil {
		p.failed.Add(1)
		return func() (taskproto.Result, error) { return taskproto.Result{}, err }
	}
	return func() (taskproto.Result, error) {
		select {
		case res := <-j.done:
			return res, j.err
		case <-ctx.Done():
			// The worker that takes the job sees its context is done and skips it.
			return taskproto.Result{Queue: time.Since(j.enqueued)}, ctx.Err()
		}
	}
}

func (p *Pool) enqueue(j *job) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return taskproto.Errorf(taskproto.CodeShuttingDown, "pool is closed")
	}
	p.queued.Add(1) // before the send: a worker may take the job at once
	select {
	case p.queue <- j:
		return nil
	default:
		p.queued.Add(-1)
		return taskproto.Errorf(taskproto.CodeOverloaded,
			"pool queue is full (%d tasks waiting for %d goroutines); retry later", cap(p.queue), p.workers)
	}
}

func (p *Pool) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name:        "pool",
		Description: fmt.Sprintf("%d goroutines fed from a queue of %d", p.workers, cap(p.queue)),
		Concurrency: p.workers,
		PID:         os.Getpid(),
	}
}

func (p *Pool) Stats(context.Context) (taskproto.Stats, error) {
	return p.stats(int64(p.workers)), nil
}

// Close stops the goroutines once they finish their current task, and
// fails the tasks still queued with shutting_down.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	for {
		select {
		case j := <-p.queue:
			p.queued.Add(-1)
			p.failed.Add(1)
			j.err = taskproto.Errorf(taskproto.CodeShuttingDown, "pool closed before the task ran")
			j.done <- taskproto.Result{Queue: time.Since(j.enqueued)}
		default:
			return nil
		}
	}
}

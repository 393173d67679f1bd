// Package multiproc is the strategy of N isolated worker processes: each
// worker is its own Go runtime (GOMAXPROCS 1 by default, as each of the
// Python lab's multiprocessing workers was its own interpreter), so one
// worker's crash, leak or GC pause touches no other.
//
// Transport: the plugin hands each worker one end of a Unix socketpair and
// speaks length-prefixed protobuf frames over it, the same ExecuteRequest and
// ExecuteResponse messages as the host-plugin stream. A socketpair costs one
// write and one read per message each way, with no handshake, TLS or HTTP/2
// framing as a second go-plugin/gRPC hop would add; and a worker's death is
// seen at once as the end of its socket, which the plugin turns into a retry
// of its task on another worker.
package multiproc

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
)

// Options configure an Executor.
type Options struct {
	Processes  int   // workers
	GOMAXPROCS int   // per worker
	MemoryMB   int64 // per worker; 0 for no limit
	Inflight   int   // tasks a worker runs at once
	// Prefetch is how many more tasks a busy worker is sent, so that it
	// starts the next as soon as one ends instead of idling for a round
	// trip; the price is that such a task may wait behind a long one while
	// another worker is free.
	Prefetch  int
	QueueSize int // tasks waiting for a free worker
	// Exe is the binary started as `Exe worker ...`: the plugin itself.
	Exe           string
	DataDir       string
	LargeFileName string
	Log           hclog.Logger
}

// OptionsFrom reads the strategy's options from the host's configuration.
func OptionsFrom(cfg taskproto.Config, log hclog.Logger) (Options, error) {
	exe, err := os.Executable()
	if err != nil {
		return Options{}, fmt.Errorf("find own binary: %w", err)
	}
	return Options{
		Processes:     int(cfg.Processes),
		GOMAXPROCS:    int(cfg.Int("multiproc.worker_gomaxprocs", 1)),
		MemoryMB:      cfg.Int("multiproc.worker_memory_mb", 0),
		Inflight:      int(cfg.Int("multiproc.worker_inflight", 1)),
		Prefetch:      int(cfg.Int("multiproc.worker_prefetch", 0)),
		QueueSize:     int(cfg.Int("multiproc.queue_size", 1024)),
		Exe:           exe,
		DataDir:       cfg.DataDir,
		LargeFileName: cfg.LargeFileName,
		Log:           log,
	}, nil
}

// Restart policy of a dead worker.
const (
	minBackoff  = 50 * time.Millisecond
	maxBackoff  = 5 * time.Second
	stableAfter = 10 * time.Second
)

// Executor dispatches tasks to the least-loaded worker; tasks that find
// every worker full wait in a bounded FIFO queue.
type Executor struct {
	opt Options
	log hclog.Logger

	mu      sync.Mutex
	workers []*worker
	pending list.List // of *call, waiting for a free worker
	closed  bool

	seq                        atomic.Uint64
	running, completed, failed atomic.Int64
	stop                       chan struct{}
	wg                         sync.WaitGroup // supervising goroutines
}

// call is one task from Submit to its single answer.
type call struct {
	ctx      context.Context
	task     taskproto.Task
	seq      uint64
	enqueued time.Time
	sent     time.Time
	retried  bool
	worker   *worker       // running it; nil while pending
	place    *list.Element // in pending
	finished bool          // answered; guarded by Executor.mu
	// abandoned is set before a cancel is written for the call, so that a
	// send racing it does not deliver the task after its cancel.
	abandoned atomic.Bool
	done      chan outcome // buffered: answering never blocks
}

type outcome struct {
	res taskproto.Result
	err error
}

// New starts the workers and returns once every one is running.
func New(opt Options) (*Executor, error) {
	if opt.Processes < 1 || opt.Inflight < 1 || opt.Prefetch < 0 || opt.QueueSize < 1 || opt.GOMAXPROCS < 1 {
		return nil, fmt.Errorf("multiproc: need at least one process, in-flight slot, queue slot and GOMAXPROCS; got %+v", opt)
	}
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	e := &Executor{opt: opt, log: opt.Log, stop: make(chan struct{})}
	for i := range opt.Processes {
		w := &worker{e: e, name: fmt.Sprintf("w%d", i), inflight: map[uint64]*call{}}
		if err := w.start(); err != nil {
			e.Close()
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		e.workers = append(e.workers, w)
	}
	return e, nil
}

// Execute runs t on a worker.
func (e *Executor) Execute(ctx context.Context, t taskproto.Task) (taskproto.Result, error) {
	return e.Submit(ctx, t)()
}

// Submit hands t to the least-loaded worker with a free slot, or queues it.
func (e *Executor) Submit(ctx context.Context, t taskproto.Task) func() (taskproto.Result, error) {
	c := &call{ctx: ctx, task: t, seq: e.seq.Add(1), enqueued: time.Now(), done: make(chan outcome, 1)}
	e.mu.Lock()
	var send *worker
	switch {
	case e.closed:
		e.finishLocked(c, taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "multiproc strategy is stopping"))
	case e.assignLocked(c):
		send = c.worker
	case e.pending.Len() < e.opt.QueueSize:
		c.place = e.pending.PushBack(c)
	default:
		e.finishLocked(c, taskproto.Result{}, taskproto.Errorf(taskproto.CodeOverloaded,
			"all %d workers busy and %d tasks queued; retry later", len(e.workers), e.opt.QueueSize))
	}
	e.mu.Unlock()
	if send != nil {
		send.send(c)
	}
	return func() (taskproto.Result, error) {
		select {
		case o := <-c.done:
			return o.res, o.err
		case <-ctx.Done():
			e.abandon(c)
			o := <-c.done // abandon answered it, or a result won the race
			return o.res, o.err
		}
	}
}

// assignLocked gives c to the ready worker with the fewest tasks, if one
// has a free slot.
func (e *Executor) assignLocked(c *call) bool {
	var best *worker
	for _, w := range e.workers {
		if w.ready && len(w.inflight) < e.opt.Inflight+e.opt.Prefetch && (best == nil || len(w.inflight) < len(best.inflight)) {
			best = w
		}
	}
	if best == nil {
		return false
	}
	c.worker, c.place = best, nil
	c.sent = time.Now()
	best.inflight[c.seq] = c
	e.running.Add(1)
	return true
}

// fillLocked moves pending calls to free worker slots and returns them, to
// be sent once the lock is released.
func (e *Executor) fillLocked() []*call {
	var out []*call
	for front := e.pending.Front(); front != nil; front = e.pending.Front() {
		c := front.Value.(*call)
		if !e.assignLocked(c) {
			break
		}
		e.pending.Remove(front)
		out = append(out, c)
	}
	return out
}

func sendAll(calls []*call) {
	for _, c := range calls {
		c.worker.send(c)
	}
}

// finishLocked answers c, once.
func (e *Executor) finishLocked(c *call, res taskproto.Result, err error) {
	if c.finished {
		return
	}
	c.finished = true
	if err != nil {
		e.failed.Add(1)
	} else {
		e.completed.Add(1)
	}
	c.done <- outcome{res, err}
}

// abandon answers a call whose context ended, and tells its worker to stop.
func (e *Executor) abandon(c *call) {
	e.mu.Lock()
	w := c.worker
	c.abandoned.Store(true)
	if !c.finished {
		if c.place != nil {
			e.pending.Remove(c.place)
			c.place = nil
		}
		if w != nil {
			delete(w.inflight, c.seq)
			e.running.Add(-1)
		}
		e.finishLocked(c, taskproto.Result{Worker: workerName(w), Queue: queued(c)}, c.ctx.Err())
	}
	next := e.fillLocked()
	e.mu.Unlock()
	if w != nil {
		w.cancel(c.seq)
	}
	sendAll(next)
}

func workerName(w *worker) string {
	if w == nil {
		return ""
	}
	return w.name
}

func queued(c *call) time.Duration {
	if c.sent.IsZero() {
		return time.Since(c.enqueued)
	}
	return c.sent.Sub(c.enqueued)
}

// result answers the call a worker replied for.
func (e *Executor) result(w *worker, resp *pb.ExecuteResponse) {
	e.mu.Lock()
	c := w.inflight[resp.GetSeq()]
	if c != nil {
		delete(w.inflight, resp.GetSeq())
		w.tasks++
		e.running.Add(-1)
		res := taskproto.Result{
			Value:  resp.GetResult(),
			Worker: w.name,
			Queue:  queued(c) + time.Duration(resp.GetQueueUs())*time.Microsecond,
			Run:    time.Duration(resp.GetRunUs()) * time.Microsecond,
		}
		var err error
		if resp.GetErrorCode() != "" {
			err = &taskproto.Error{Code: taskproto.Code(resp.GetErrorCode()), Message: resp.GetErrorMessage()}
		}
		e.finishLocked(c, res, err)
	}
	next := e.fillLocked()
	e.mu.Unlock()
	sendAll(next)
}

// lost handles the death of a worker: each task it was running is retried
// once, on the next free worker, ahead of the queue; a task that has
// already been retried fails with executor_failed.
func (e *Executor) lost(w *worker, why error) {
	e.mu.Lock()
	w.ready = false
	calls := w.inflight
	w.inflight = map[uint64]*call{}
	var retry []*call
	for _, c := range calls {
		e.running.Add(-1)
		c.worker = nil
		if c.retried || e.closed {
			e.finishLocked(c, taskproto.Result{Worker: w.name, Queue: queued(c)}, taskproto.Errorf(taskproto.CodeExecutorFailed,
				"worker %s (pid %d) died under the task: %v", w.name, w.pid, why))
			continue
		}
		c.retried = true
		c.sent = time.Time{}
		retry = append(retry, c)
	}
	// Retried in the order they arrived, ahead of the queue.
	slices.SortFunc(retry, func(a, b *call) int { return cmp.Compare(a.seq, b.seq) })
	for i := len(retry) - 1; i >= 0; i-- {
		retry[i].place = e.pending.PushFront(retry[i])
	}
	next := e.fillLocked()
	e.mu.Unlock()
	sendAll(next)
}

// Info describes the strategy.
func (e *Executor) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name: "multiproc",
		Description: fmt.Sprintf("%d worker processes (GOMAXPROCS %d, %d task(s) each at once) fed over Unix sockets",
			e.opt.Processes, e.opt.GOMAXPROCS, e.opt.Inflight),
		Concurrency: e.opt.Processes * e.opt.Inflight,
		PID:         os.Getpid(),
	}
}

// Stats counts tasks and describes every worker.
func (e *Executor) Stats(context.Context) (taskproto.Stats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := taskproto.Stats{
		Running:   e.running.Load(),
		Queued:    int64(e.pending.Len()),
		Completed: e.completed.Load(),
		Failed:    e.failed.Load(),
		Capacity:  int64(e.opt.Processes * e.opt.Inflight),
	}
	for _, w := range e.workers {
		state := "idle"
		switch {
		case !w.ready:
			state = "restarting"
		case len(w.inflight) > 0:
			state = "busy"
		}
		st.Workers = append(st.Workers, taskproto.WorkerStats{ID: w.name, PID: w.pid, State: state, Tasks: w.tasks, Restarts: w.restarts})
		st.Restarts += w.restarts
	}
	return st, nil
}

// Close stops the workers; queued tasks fail with shutting_down, running
// ones with executor_failed.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for front := e.pending.Front(); front != nil; front = e.pending.Front() {
		e.pending.Remove(front)
		c := front.Value.(*call)
		c.place = nil
		e.finishLocked(c, taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "multiproc strategy is stopping"))
	}
	workers := e.workers
	e.mu.Unlock()
	close(e.stop)
	for _, w := range workers {
		w.kill()
	}
	e.wg.Wait()
	return nil
}

// Package multiproc is the strategy of N isolated worker processes: each
// worker is its own Go runtime (GOMAXPROCS 1 by default, as each of the
// Python lab's multiprocessing workers was its own interpreter), so one
// worker's crash, leak or GC pause touches no other.
//
// Transport: the plugin hands each worker one end of a Unix socketpair and
// speaks the data channel of taskproto/plugin over it, the same framing and
// codec as the host's hop to the plugin: one write and one read per batch
// of messages each way, and a worker's death is seen at once as the end of
// its socket, which the plugin turns into a retry of its task on another
// worker. Each worker's socket is written by a goroutine of its own, so a
// worker that stops reading holds up no other.
package multiproc

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/plugin"
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

// Keys are the keys the multiproc strategy reads.
var Keys = []taskproto.Key{
	{Section: "other", Name: "multiprocessing_processes", Type: taskproto.KeyInt, Default: "4", Min: 1, Max: 1024,
		Help: "worker processes, each its own Go runtime"},
	{Section: "multiproc", Name: "worker_gomaxprocs", Type: taskproto.KeyInt, Default: "1", Min: 1, Max: 1024,
		Help: "GOMAXPROCS of each worker: 1 models one single-threaded interpreter each"},
	{Section: "multiproc", Name: "worker_memory_mb", Type: taskproto.KeyInt, Default: "0", Min: 0, Max: 1 << 30,
		Help: "memory limit per worker in MiB (0: none); past it only that worker dies"},
	{Section: "multiproc", Name: "worker_inflight", Type: taskproto.KeyInt, Default: "1", Min: 1, Max: 65536,
		Help: "tasks a worker runs at once"},
	{Section: "multiproc", Name: "worker_prefetch", Type: taskproto.KeyInt, Default: "0", Min: 0, Max: 65536,
		Help: "tasks sent ahead to a busy worker"},
	{Section: "multiproc", Name: "queue_size", Type: taskproto.KeyInt, Default: "1024", Min: 1, Max: 10_000_000,
		Help: "tasks waiting for a free worker (beyond: overloaded)"},
}

// OptionsFrom reads the strategy's options from the host's configuration.
func OptionsFrom(cfg taskproto.Config, log hclog.Logger) (Options, error) {
	exe, err := os.Executable()
	if err != nil {
		return Options{}, fmt.Errorf("find own binary: %w", err)
	}
	return Options{
		Processes:     int(cfg.Int("other.multiprocessing_processes")),
		GOMAXPROCS:    int(cfg.Int("multiproc.worker_gomaxprocs")),
		MemoryMB:      cfg.Int("multiproc.worker_memory_mb"),
		Inflight:      int(cfg.Int("multiproc.worker_inflight")),
		Prefetch:      int(cfg.Int("multiproc.worker_prefetch")),
		QueueSize:     int(cfg.Int("multiproc.queue_size")),
		Exe:           exe,
		DataDir:       cfg.DataDir,
		LargeFileName: cfg.LargeFileName,
		Log:           log,
	}, nil
}

// OverrunGrace is how long a worker has to stop a task once it is told to
// (its requester went away, or its deadline passed). A worker still running
// the task after that is killed and replaced: a task that cannot be
// interrupted costs at most its deadline plus this.
const OverrunGrace = 2 * time.Second

// Executor dispatches tasks to the least-loaded worker; tasks that find
// every worker full wait in a bounded FIFO queue. Every field below mu, and
// the fields of each worker and call marked so, are guarded by mu.
type Executor struct {
	opt     Options
	log     hclog.Logger
	workers []*workerHandle

	mu                         sync.Mutex
	pending                    list.List        // of *call, waiting for a free worker
	toFlush                    []*workerProcess // appended to under mu, written after it
	closed                     bool
	seq                        uint64
	running, completed, failed int64
}

// call is one task from Submit to its single answer.
type call struct {
	ctx      context.Context
	task     taskproto.Task
	done     taskproto.Done
	seq      uint64
	enqueued time.Time
	sent     time.Time
	stop     func() bool // unregisters the abandon on ctx's end

	// Guarded by Executor.mu.
	retried  bool
	worker   *workerHandle // holding it; nil while pending
	place    *list.Element // in pending
	answered bool          // done has been (or is about to be) called
}

// New starts the workers and returns once every one is running.
func New(opt Options) (*Executor, error) {
	if opt.Processes < 1 || opt.Inflight < 1 || opt.Prefetch < 0 || opt.QueueSize < 1 || opt.GOMAXPROCS < 1 {
		return nil, fmt.Errorf("multiproc: need at least one process, in-flight slot, queue slot and GOMAXPROCS; got %+v", opt)
	}
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	e := &Executor{opt: opt, log: opt.Log}
	for i := range opt.Processes {
		w := &workerHandle{e: e, name: fmt.Sprintf("w%d", i), inflight: map[uint64]*call{}}
		e.workers = append(e.workers, w)
	}
	for _, w := range e.workers {
		if err := w.start(); err != nil {
			e.Close()
			return nil, fmt.Errorf("start worker %s: %w", w.name, err)
		}
	}
	return e, nil
}

// Submit hands t to the least-loaded worker with a free slot, or queues it.
func (e *Executor) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	c := &call{ctx: ctx, task: t, done: done, enqueued: time.Now()}
	var out answers
	e.mu.Lock()
	e.seq++
	c.seq = e.seq
	switch {
	case e.closed:
		e.answerLocked(&out, c, taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "multiproc strategy is stopping"))
	case e.assignLocked(c):
	case e.pending.Len() < e.opt.QueueSize:
		c.place = e.pending.PushBack(c)
	default:
		e.answerLocked(&out, c, taskproto.Result{}, taskproto.Errorf(taskproto.CodeOverloaded,
			"all %d workers busy and %d tasks queued; retry later", len(e.workers), e.opt.QueueSize))
	}
	if !c.answered {
		// Registered under mu, after the task is queued or written: an
		// abandon comes after it.
		c.stop = context.AfterFunc(ctx, func() { e.abandon(c) })
	}
	e.unlockAndFlush(nil)
	out.deliver()
}

// assignLocked gives c to the ready worker with the fewest tasks, if one
// has a free slot, and appends it to that worker's socket.
func (e *Executor) assignLocked(c *call) bool {
	var best *workerHandle
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
	e.running++
	best.sendLocked(plugin.TaskRequest(plugin.TaskMessage(c.ctx, c.seq, c.task)))
	return true
}

// fillLocked moves pending calls to free worker slots.
func (e *Executor) fillLocked() {
	for front := e.pending.Front(); front != nil; front = e.pending.Front() {
		if !e.assignLocked(front.Value.(*call)) {
			return
		}
		e.pending.Remove(front)
	}
}

// unlockAndFlush releases mu and writes what was appended to workers'
// sockets meanwhile: a worker's own reader (self) writes its socket itself,
// the others' writer goroutines write theirs. Nothing that reads the host's
// data channel ever writes a worker's socket.
func (e *Executor) unlockAndFlush(self *workerProcess) {
	procs := e.toFlush
	e.toFlush = nil
	e.mu.Unlock()
	for _, p := range procs {
		if p == self {
			p.out.Flush()
		} else {
			p.kickWriter()
		}
	}
}

// answers are outcomes decided under mu and reported after it is released:
// a Done may call Submit.
type answers []func()

func (a *answers) deliver() {
	for _, f := range *a {
		f()
	}
}

// answerLocked decides c's outcome, once.
func (e *Executor) answerLocked(out *answers, c *call, res taskproto.Result, err error) {
	if c.answered {
		return
	}
	c.answered = true
	if err != nil {
		e.failed++
	} else {
		e.completed++
	}
	stop, done := c.stop, c.done
	*out = append(*out, func() {
		if stop != nil {
			stop()
		}
		done(res, err)
	})
}

// abandon answers a call whose context ended. A queued call is dropped; a
// call a worker holds keeps its slot until the worker says it has stopped,
// and the worker is replaced if it has not within OverrunGrace.
func (e *Executor) abandon(c *call) {
	var out answers
	e.mu.Lock()
	w := c.worker
	if !c.answered {
		if c.place != nil {
			e.pending.Remove(c.place)
			c.place = nil
		}
		e.answerLocked(&out, c, taskproto.Result{Worker: workerName(w), Queue: queued(c)}, c.ctx.Err())
		if w != nil {
			w.sendLocked(plugin.CancelRequest(c.seq))
			seq := c.seq
			time.AfterFunc(OverrunGrace, func() { w.overran(seq, c) })
		}
	}
	e.unlockAndFlush(nil)
	out.deliver()
}

func workerName(w *workerHandle) string {
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

// result answers the call a worker (process p) replied for, and frees its
// slot; it runs on p's reader.
func (e *Executor) result(w *workerHandle, p *workerProcess, resp *pb.ExecuteResponse) {
	var out answers
	e.mu.Lock()
	if c := w.inflight[resp.GetSeq()]; c != nil {
		delete(w.inflight, resp.GetSeq())
		w.tasks++
		e.running--
		plugin.MergeTiming(c.ctx, resp)
		res, err := plugin.ResultOf(resp)
		res.Worker = w.name
		res.Queue += queued(c)
		e.answerLocked(&out, c, res, err)
	}
	e.fillLocked()
	e.unlockAndFlush(p)
	out.deliver()
}

// lost handles the end of a worker process: each task it was running is
// retried once, on the next free worker, ahead of the queue; a task that
// has been retried already fails with executor_failed.
func (e *Executor) lost(w *workerHandle, pid int, why error) {
	var out answers
	e.mu.Lock()
	w.ready, w.proc = false, nil
	calls := w.inflight
	w.inflight = map[uint64]*call{}
	var retry []*call
	for _, c := range calls {
		e.running--
		c.worker = nil
		switch {
		case c.answered: // abandoned: nothing to retry
		case c.retried || e.closed:
			e.answerLocked(&out, c, taskproto.Result{Worker: w.name, Queue: queued(c)}, taskproto.Errorf(taskproto.CodeExecutorFailed,
				"worker %s (pid %d) died under the task: %v", w.name, pid, why))
		default:
			c.retried = true
			c.sent = time.Time{}
			retry = append(retry, c)
		}
	}
	// Retried in the order they arrived, ahead of the queue.
	slices.SortFunc(retry, func(a, b *call) int { return cmp.Compare(a.seq, b.seq) })
	for i := len(retry) - 1; i >= 0; i-- {
		retry[i].place = e.pending.PushFront(retry[i])
	}
	e.fillLocked()
	e.unlockAndFlush(nil)
	out.deliver()
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
		Running:   e.running,
		Queued:    int64(e.pending.Len()),
		Completed: e.completed,
		Failed:    e.failed,
		Capacity:  int64(e.opt.Processes * e.opt.Inflight),
	}
	for _, w := range e.workers {
		ws := w.statsLocked()
		st.Workers = append(st.Workers, ws)
		st.Restarts += ws.Restarts
	}
	return st, nil
}

// Close stops the workers; queued tasks fail with shutting_down, running
// ones with executor_failed.
func (e *Executor) Close() error {
	var out answers
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
		e.answerLocked(&out, c, taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "multiproc strategy is stopping"))
	}
	e.mu.Unlock()
	out.deliver()
	for _, w := range e.workers {
		w.stop()
	}
	return nil
}

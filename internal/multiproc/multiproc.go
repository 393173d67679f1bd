// Package multiproc is the strategy of N isolated worker processes: each
// worker is its own Go runtime (GOMAXPROCS 1 by default, as each of the
// Python lab's multiprocessing workers was its own interpreter), so one
// worker's crash, leak or GC pause touches no other.
//
// Transport: the plugin gives each worker one end of a Unix socketpair,
// which carries the data channel of taskproto/plugin, the same framing and
// codec as the host's hop to the plugin: one write and one read per batch
// of messages each way, and a worker's death is seen at once as the end of
// its socket, which turns into a retry of its tasks on another worker. When
// the host offers a workers channel, the plugin hands the other end to the
// host, whose Executor (NewDispatcher) sends the worker tasks itself: the
// plugin then only starts, supervises and kills the processes. Otherwise
// (the conformance kit) the plugin's Executor sends them.
package multiproc

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/sandbox"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/wire"
)

// Options configure an Executor.
type Options struct {
	Processes  int   // workers
	GOMAXPROCS int   // per worker
	MemoryMB   int64 // per worker; 0 for no limit
	Inflight   int   // tasks a worker runs at once
	// Prefetch is how many more tasks a busy worker may be sent, so that it
	// starts the next as soon as one ends instead of idling for a round
	// trip. It is sent them only while the tasks it holds are expected to
	// end within prefetchHorizon (runCosts): a task is not sent to wait
	// behind a long one while another worker may free up first.
	Prefetch  int
	QueueSize int // tasks waiting for a free worker
	// Sandbox is how each worker is confined before it takes a task
	// (sandbox.None, Strict, BestEffort), CPUSeconds its RLIMIT_CPU.
	Sandbox    string
	CPUSeconds int64
	// MaxFileBytes is the largest file a confined worker may write: the
	// io task's bound.
	MaxFileBytes int64
	// Exe is the binary started as `Exe worker ...`: the plugin itself.
	Exe           string
	DataDir       string
	LargeFileName string
	Log           hclog.Logger

	// Handoff, in a plugin the host offered a workers channel, sends each
	// worker's socket to the host, which then dispatches tasks to the
	// workers itself (NewDispatcher); the plugin only runs the processes.
	Handoff *launch.WorkerChannel
	// Batch is called around each batch of results a worker's reader
	// delivers (see launch.BatchHooks).
	Batch launch.BatchHooks
	// Host says the dispatcher is the host's: it stamps the host's stages
	// of a task's timeline (host_sent, host_recv).
	Host bool
	// Kill asks the plugin to kill a worker the host was handed (name, pid).
	Kill func(name string, pid int)
}

// sandboxKey is [multiproc] sandbox.
var sandboxKey = taskproto.Key{Section: "multiproc", Name: "sandbox", Type: taskproto.KeyString, Default: sandbox.None, Choices: sandbox.Modes,
	Help: "none; strict: each worker runs with no capabilities, Landlock (its data directory only, no TCP), seccomp (no sockets, processes, ptrace), rlimits and a cgroup where possible, and the host refuses to start where the kernel lacks one; best-effort: what the kernel has"}

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
	{Section: "multiproc", Name: "worker_prefetch", Type: taskproto.KeyInt, Default: "4", Min: 0, Max: 65536,
		Help: "tasks sent ahead to a busy worker at most, and only while the work ahead of them is short"},
	{Section: "multiproc", Name: "queue_size", Type: taskproto.KeyInt, Default: "1024", Min: 1, Max: 10_000_000,
		Help: "tasks waiting for a free worker (beyond: overloaded)"},
	sandboxKey,
	{Section: "multiproc", Name: "worker_cpu_seconds", Type: taskproto.KeyInt, Default: "0", Min: 0, Max: 1 << 40,
		Help: "under a sandbox, CPU seconds a worker may use before it is replaced (RLIMIT_CPU; 0: no limit)"},
}

// OptionsFrom reads the strategy's options from the host's configuration.
func OptionsFrom(cfg taskproto.Config, log hclog.Logger) (Options, error) {
	exe, err := os.Executable()
	if err != nil {
		return Options{}, fmt.Errorf("find own binary: %w", err)
	}
	mode := cfg.String(sandboxKey.ID())
	if mode == sandbox.Strict {
		if missing := sandbox.Check(); len(missing) > 0 {
			return Options{}, &taskproto.KeyError{Key: sandboxKey, Problem: "strict needs what this kernel lacks: " +
				strings.Join(missing, "; ") + " (best-effort applies what there is)"}
		}
	}
	return Options{
		Sandbox:       mode,
		CPUSeconds:    cfg.Int("multiproc.worker_cpu_seconds"),
		MaxFileBytes:  max(cfg.Limits.MaxIOBytes, 1<<20),
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
// the fields of each worker and call marked so, are guarded by mu. It runs
// in the plugin, which starts the workers (New), or in the host, which the
// plugin hands them to (NewDispatcher, Attach).
type Executor struct {
	opt Options
	log hclog.Logger
	// sandbox is what confines each worker, as /stats shows it; empty
	// under none.
	sandbox string

	mu                         sync.Mutex
	workers                    []*workerHandle
	costs                      runCosts
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
	if opt.Sandbox != "" && opt.Sandbox != sandbox.None {
		e.sandbox = sandbox.Probe(sandbox.Policy{Mode: opt.Sandbox, Cgroup: cgroupPrefix(), CPUSeconds: uint64(opt.CPUSeconds),
			OpenFiles: sandboxOpenFiles, FileBytes: uint64(opt.MaxFileBytes)}).String()
		removeStaleCgroups()
	}
	for i := range opt.Processes {
		w := &workerHandle{e: e, name: fmt.Sprintf("w%d", i), runs: opt.Inflight, slots: opt.Inflight + opt.Prefetch, inflight: map[uint64]*call{}}
		e.workers = append(e.workers, w)
	}
	for _, w := range e.workers {
		if err := w.start(); err != nil {
			e.Close()
			return nil, fmt.Errorf("start worker %s: %w", w.name, err)
		}
	}
	if opt.Handoff != nil {
		go e.serveKills()
	}
	return e, nil
}

// DispatcherQueueSize bounds the tasks a host's dispatcher holds for
// workers that are all full; the host's own window keeps it far below.
const DispatcherQueueSize = 4096

// NewDispatcher is the host's Executor for the workers a plugin hands it
// (Attach); opt.Kill asks the plugin to kill one.
func NewDispatcher(log hclog.Logger, batch launch.BatchHooks, kill func(name string, pid int)) *Executor {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Executor{opt: Options{QueueSize: DispatcherQueueSize, Log: log, Batch: batch, Host: true, Kill: kill}, log: log}
}

// Attach takes a worker's socket, from the plugin that runs it: tasks go
// to it from now on. A worker attached again under its name (the plugin
// restarted it) replaces the one before, whose tasks are retried.
func (e *Executor) Attach(m *pb.WorkerSocket, conn net.Conn) {
	name, pid := m.GetName(), int(m.GetPid())
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		conn.Close()
		return
	}
	var w *workerHandle
	for _, h := range e.workers {
		if h.name == name {
			w = h
		}
	}
	if w == nil {
		w = &workerHandle{e: e, name: name, inflight: map[uint64]*call{}}
		e.workers = append(e.workers, w)
	}
	w.runs = int(max(m.GetInflight(), 1))
	w.slots = w.runs + int(max(m.GetPrefetch(), 0))
	w.restarts = m.GetRestarts()
	old := w.proc
	e.mu.Unlock()
	if old != nil {
		e.lost(w, old, errors.New("replaced by a new process"))
		old.conn.Close()
	}
	p := &workerProcess{pid: pid, conn: conn, out: wire.NewFrameWriter(conn), read: make(chan struct{}),
		kill: func() { e.opt.Kill(name, pid) }}
	w.up(p)
	go func() {
		w.readFrom(p)
		e.lost(w, p, errors.New("its socket ended"))
	}()
}

// serveKills kills the workers the host asks it to, until the workers
// channel ends.
func (e *Executor) serveKills() {
	for {
		m, sock, err := e.opt.Handoff.Read()
		if err != nil {
			return
		}
		if sock != nil {
			sock.Close()
		}
		k := m.GetKill()
		if k == nil {
			continue
		}
		e.mu.Lock()
		var p *workerProcess
		for _, w := range e.workers {
			if w.name == k.GetName() && w.proc != nil && w.proc.pid == int(k.GetPid()) {
				p = w.proc
			}
		}
		e.mu.Unlock()
		if p != nil {
			e.log.Warn("the host asks to replace a worker that did not stop a task in time", "worker", k.GetName(), "pid", k.GetPid())
			p.Kill()
		}
	}
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
		e.answerLocked(&out, c, taskproto.Result{}, e.stopping())
	case e.opt.Handoff != nil:
		e.answerLocked(&out, c, taskproto.Result{}, taskproto.Errorf(taskproto.CodeExecutorFailed,
			"multiproc handed its workers to the host: tasks go to them, not to the plugin"))
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
	e.unlockAndFlush()
	out.deliver()
}

// assignLocked gives c to the ready worker with the fewest tasks, if one
// has a free slot, and appends it to that worker's socket.
func (e *Executor) assignLocked(c *call) bool {
	var best *workerHandle
	for _, w := range e.workers {
		if w.ready && len(w.inflight) < w.slots && (best == nil || len(w.inflight) < len(best.inflight)) {
			best = w
		}
	}
	if best == nil || (len(best.inflight) >= best.runs && !e.costs.shortAhead(best, c.task)) {
		return false
	}
	c.worker, c.place = best, nil
	c.sent = time.Now()
	best.inflight[c.seq] = c
	e.running++
	if e.opt.Host {
		taskproto.Stamp(c.ctx, taskproto.StageHostSent)
	}
	best.sendLocked(wire.TaskRequest(wire.TaskMessage(c.ctx, c.seq, c.task)))
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
// sockets meanwhile, from this goroutine: no writer is woken. The write
// does not wait: what a worker is sent is bounded by its slots (a task and
// at most one cancel each), far below what its socket buffers.
func (e *Executor) unlockAndFlush() {
	procs := e.toFlush
	e.toFlush = nil
	e.mu.Unlock()
	for _, p := range procs {
		p.out.Flush()
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
			w.sendLocked(wire.CancelRequest(c.seq))
			seq := c.seq
			time.AfterFunc(OverrunGrace, func() { w.overran(seq, c) })
		}
	}
	e.unlockAndFlush()
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
		if e.opt.Host {
			taskproto.Stamp(c.ctx, taskproto.StageHostRecv)
		}
		wire.MergeTiming(c.ctx, resp)
		res, err := wire.ResultOf(resp)
		if err == nil {
			e.costs.observe(c.task, res.Run)
		}
		res.Worker = w.name
		res.Queue += queued(c)
		e.answerLocked(&out, c, res, err)
	}
	e.fillLocked()
	e.unlockAndFlush()
	out.deliver()
}

// lost handles the end of a worker process: each task it was running is
// retried once, on the next free worker, ahead of the queue; a task that
// has been retried already fails with executor_failed.
func (e *Executor) lost(w *workerHandle, p *workerProcess, why error) {
	var out answers
	e.mu.Lock()
	if w.proc != p { // replaced already, which retried its tasks
		e.mu.Unlock()
		return
	}
	pid := p.pid
	w.ready, w.proc = false, nil
	calls := w.inflight
	w.inflight = map[uint64]*call{}
	// Why it died, from the report its runtime left: read by the one that
	// had its tasks (in a plugin that handed the worker to the host, the
	// host), and only then, so that the other does not take it first.
	oom := ""
	if len(calls) > 0 {
		oom = outOfMemory(crashReport(pid))
	}
	var retry []*call
	for _, c := range calls {
		e.running--
		c.worker = nil
		switch {
		case c.answered: // abandoned: nothing to retry
		case oom != "" && (len(calls) == 1 || c.retried):
			// The task's own allocation, when it ran alone: retried, it
			// would take another worker with it.
			e.answerLocked(&out, c, taskproto.Result{Worker: w.name, Queue: queued(c)}, taskproto.Errorf(taskproto.CodeResourceExhausted,
				"worker %s (pid %d) ran out of memory under the task (%s): it needed more than [multiproc] worker_memory_mb allows; the worker is replaced",
				w.name, pid, oom))
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
	e.unlockAndFlush()
	out.deliver()
}

// Info describes the strategy.
func (e *Executor) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name: "multiproc",
		Description: fmt.Sprintf("%d worker processes (GOMAXPROCS %d, %d task(s) each at once) fed over Unix sockets",
			e.opt.Processes, e.opt.GOMAXPROCS, e.opt.Inflight),
		Concurrency:   e.opt.Processes * e.opt.Inflight,
		PID:           os.Getpid(),
		DirectWorkers: e.opt.Handoff != nil,
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

// stopping is the answer to a task still queued when the Executor closes:
// shutting_down, or in the host, where that means the plugin that runs the
// workers has stopped, executor_failed.
func (e *Executor) stopping() error {
	if e.opt.Host {
		return taskproto.Errorf(taskproto.CodeExecutorFailed, "the plugin running the workers stopped")
	}
	return taskproto.Errorf(taskproto.CodeShuttingDown, "multiproc strategy is stopping")
}

// Close stops the workers; queued tasks fail with shutting_down (in the
// host, executor_failed), running ones with executor_failed.
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
		e.answerLocked(&out, c, taskproto.Result{}, e.stopping())
	}
	e.mu.Unlock()
	out.deliver()
	for _, w := range e.workers {
		w.stop()
	}
	if e.opt.Handoff != nil {
		e.opt.Handoff.Close() // ends serveKills
	}
	if e.opt.Sandbox != "" && e.opt.Sandbox != sandbox.None {
		sandbox.RemoveCgroups(cgroupPrefix())
		removeStaleCgroups()
	}
	return nil
}

// prefetchHorizon is how soon the tasks a busy worker holds must be
// expected to end for it to be sent another: a few round trips' worth, so
// that short tasks are pipelined and a long one holds no other back.
const prefetchHorizon = 2 * time.Millisecond

// runCosts estimates how long a task runs from what tasks of its kind
// took: per kind, an average of the run time per unit of its size (fib's
// n², cpu's and io's n, a sleep's n ms exactly; noop 1). Guarded by
// Executor.mu.
type runCosts struct {
	perUnit map[string]float64 // ns per unit; absent: not seen yet
	horizon time.Duration      // 0: prefetchHorizon (tests set it)
}

func taskSize(t taskproto.Task) float64 {
	n := float64(max(t.N, 1))
	switch t.Kind {
	case taskproto.KindFib:
		return n * n
	case taskproto.KindNoop:
		return 1
	}
	return n
}

func (rc *runCosts) observe(t taskproto.Task, run time.Duration) {
	if t.Kind == taskproto.KindSleep {
		return // known exactly
	}
	if rc.perUnit == nil {
		rc.perUnit = map[string]float64{}
	}
	v := float64(run.Nanoseconds()) / taskSize(t)
	if old, ok := rc.perUnit[t.Kind]; ok {
		v = old + (v-old)/8
	}
	rc.perUnit[t.Kind] = v
}

// estimate is how long t is expected to run; ok is false when its kind
// has not been seen.
func (rc *runCosts) estimate(t taskproto.Task) (time.Duration, bool) {
	if t.Kind == taskproto.KindSleep {
		return time.Duration(t.N) * time.Millisecond, true
	}
	v, ok := rc.perUnit[t.Kind]
	return time.Duration(v * taskSize(t)), ok
}

// shortAhead says whether w, busy, may be sent t ahead: the tasks it holds
// and t itself are all of known cost, and those it holds end within
// prefetchHorizon.
func (rc *runCosts) shortAhead(w *workerHandle, t taskproto.Task) bool {
	if _, ok := rc.estimate(t); !ok {
		return false
	}
	var ahead time.Duration
	for _, c := range w.inflight {
		d, ok := rc.estimate(c.task)
		if !ok {
			return false
		}
		ahead += d
	}
	horizon := rc.horizon
	if horizon == 0 {
		horizon = prefetchHorizon
	}
	return ahead <= horizon
}

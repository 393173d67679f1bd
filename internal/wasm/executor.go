package wasm

import (
	"container/list"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/taskproto"
)

// Keys are the keys the wasm strategy reads.
var Keys = []taskproto.Key{
	{Section: "wasm", Name: "instances", Type: taskproto.KeyInt, Default: "0", Min: 0, Max: 4096,
		Help: "wasm instances, each running one task at a time with memory of its own; 0: the number of CPUs"},
	{Section: "wasm", Name: "queue_size", Type: taskproto.KeyInt, Default: "1024", Min: 1, Max: 10_000_000,
		Help: "tasks waiting for a free instance (beyond: overloaded)"},
	{Section: "wasm", Name: "max_memory_mb", Type: taskproto.KeyInt, Default: "128", Min: MinMemoryMB, Max: maxWasmPages / pagesPerMB,
		Help: "memory cap of each instance in MiB; a task past it fails with resource_exhausted and its instance is replaced"},
	{Section: "wasm", Name: "module", Type: taskproto.KeyString, Default: "",
		Help: "the guest module; empty: " + ModuleDir + "/" + ModuleFile + " beside the plugin, as make build installs it"},
	{Section: "wasm", Name: "close_on_context_done", Type: taskproto.KeyBool, Default: "true",
		Help: "wazero's termination checks in every loop of the guest: a deadline or cancel stops any task, even one deaf to its context, and its instance is replaced; CPU work ~20x slower. false: for trusted guests only"},
	{Section: "wasm", Name: "compilation_cache", Type: taskproto.KeyBool, Default: "true",
		Help: "keep the compiled module in a per-user directory under the temp dir: a restart skips compiling"},
}

// MinMemoryMB is the least memory cap a key may set: the guest's Go
// runtime needs about 3 MiB to start and 7 MiB for a large fib.
const MinMemoryMB = 8

// Where `make build` installs the module, beside the plugin: in a
// directory of its own, which [server] verify_plugins checks against the
// plugin manifest (plugin.CheckSupportFiles).
const (
	ModuleDir  = "wasm-modules"
	ModuleFile = "tasks.wasm"
)

// ModulePath is the module cfg names, or the one beside the running
// binary.
func ModulePath(cfg taskproto.Config) (string, error) {
	if p := cfg.String("wasm.module"); p != "" {
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("wasm: find the plugin's own binary, beside which the module is: %w", err)
	}
	return filepath.Join(filepath.Dir(exe), ModuleDir, ModuleFile), nil
}

// instantiateTimeout bounds the start of an instance's Go runtime (a few
// milliseconds).
const instantiateTimeout = 30 * time.Second

// Executor runs tasks on a pool of instances of one compiled module, fed
// from a bounded queue: a task takes a free instance, or waits in arrival
// order, or is refused with overloaded when queue_size tasks already wait.
// A task whose context ends while it waits is dropped and answered at once.
type Executor struct {
	module *Module
	log    hclog.Logger
	limit  int // tasks waiting at most

	running, queued, completed, failed atomic.Int64

	mu     sync.Mutex
	slots  []*slot
	free   []*slot   // slots not running a task
	queue  list.List // of *job
	closed bool
	wg     sync.WaitGroup // slot goroutines
}

// slot is one place in the pool and the instance it holds; what it counts
// outlives the instances it replaces.
type slot struct {
	id   string
	inst *Instance // nil until made, and after one broke until remade; owned by the goroutine running the slot

	state    atomic.Value // string: idle, busy, restarting
	tasks    atomic.Int64
	restarts atomic.Int64
}

type job struct {
	ctx      context.Context
	task     taskproto.Task
	done     taskproto.Done
	enqueued time.Time
	place    *list.Element // in the queue; nil once taken or dropped
	stop     func() bool   // unregisters the drop on ctx's end
}

// New compiles the module cfg names ([wasm] module, or the one beside the
// plugin) and makes its instances, whose environment guestEnv extends
// (Options.GuestEnv). Close frees them.
func New(ctx context.Context, cfg taskproto.Config, log hclog.Logger, guestEnv ...string) (*Executor, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	path, err := ModulePath(cfg)
	if err != nil {
		return nil, err
	}
	opt := Options{
		Path:               path,
		MaxMemoryMB:        int(cfg.Int("wasm.max_memory_mb")),
		CloseOnContextDone: cfg.Bool("wasm.close_on_context_done"),
		DataDir:            cfg.DataDir,
		LargeFileName:      cfg.LargeFileName,
		GuestEnv:           guestEnv,
		Log:                log,
	}
	if cfg.Bool("wasm.compilation_cache") {
		opt.CacheDir = DefaultCacheDir()
	}
	n := int(cfg.Int("wasm.instances"))
	if n == 0 {
		n = runtime.NumCPU()
	}
	return NewWith(ctx, opt, n, int(cfg.Int("wasm.queue_size")))
}

// NewWith is New with its options given rather than read from a
// configuration.
func NewWith(ctx context.Context, opt Options, instances, queueSize int) (*Executor, error) {
	if instances < 1 || queueSize < 1 {
		return nil, fmt.Errorf("wasm strategy: need instances ≥ 1 and queue_size ≥ 1, got %d and %d", instances, queueSize)
	}
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	start := time.Now()
	m, err := Load(ctx, opt)
	if err != nil {
		return nil, err
	}
	e := &Executor{module: m, log: opt.Log, limit: queueSize}
	for i := range instances {
		s := &slot{id: fmt.Sprintf("i%d", i)}
		s.state.Store("idle")
		// Made now, so that a module that cannot start fails Configure.
		if s.inst, err = m.Instantiate(ctx); err != nil {
			m.Close(ctx)
			return nil, err
		}
		e.slots = append(e.slots, s)
	}
	e.free = append(e.free, e.slots...)
	e.log.Info("wasm module ready", "module", m.Path(), "instances", instances, "max_memory_mb", m.MaxMemoryBytes()/BytesPerMB,
		"close_on_context_done", opt.CloseOnContextDone, "took", time.Since(start).Round(time.Millisecond).String())
	return e, nil
}

// Submit starts t on a free instance, or queues it, or refuses it.
func (e *Executor) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	j := &job{ctx: ctx, task: t, done: done, enqueued: time.Now()}
	e.mu.Lock()
	switch {
	case e.closed:
		e.mu.Unlock()
		e.refuse(j, taskproto.Errorf(taskproto.CodeShuttingDown, "wasm strategy is closed"))
	case len(e.free) > 0 && e.queue.Len() == 0:
		s := e.free[len(e.free)-1]
		e.free = e.free[:len(e.free)-1]
		e.wg.Add(1)
		e.mu.Unlock()
		go e.serve(s, j)
	case e.queue.Len() >= e.limit:
		e.mu.Unlock()
		e.refuse(j, taskproto.Errorf(taskproto.CodeOverloaded,
			"wasm queue is full (%d tasks waiting for %d instances); retry later", e.limit, len(e.slots)))
	default:
		j.place = e.queue.PushBack(j)
		e.queued.Add(1)
		// Runs in a goroutine of its own once ctx ends, after mu is released.
		j.stop = context.AfterFunc(ctx, func() { e.drop(j) })
		e.mu.Unlock()
	}
}

// serve runs j on s, then the jobs queued, one after another in the same
// goroutine, and frees s when none is left: a busy instance costs no
// goroutine per task.
func (e *Executor) serve(s *slot, j *job) {
	defer e.wg.Done()
	for j != nil {
		e.runOn(s, j)
		e.mu.Lock()
		if j = e.popLocked(); j == nil {
			e.free = append(e.free, s)
		}
		e.mu.Unlock()
	}
}

func (e *Executor) popLocked() *job {
	front := e.queue.Front()
	if front == nil {
		return nil
	}
	j := e.queue.Remove(front).(*job)
	j.place = nil
	j.stop()
	e.queued.Add(-1)
	return j
}

// drop answers a queued job whose context ended.
func (e *Executor) drop(j *job) {
	e.mu.Lock()
	if j.place == nil { // taken first
		e.mu.Unlock()
		return
	}
	e.queue.Remove(j.place)
	j.place = nil
	e.queued.Add(-1)
	e.mu.Unlock()
	e.refuse(j, j.ctx.Err())
}

func (e *Executor) refuse(j *job, err error) {
	e.failed.Add(1)
	j.done(taskproto.Result{Queue: time.Since(j.enqueued)}, err)
}

// runOn runs j on s's instance, making one first if s has none, and
// replaces the instance after answering when the task broke it.
func (e *Executor) runOn(s *slot, j *job) {
	res := taskproto.Result{Worker: s.id, Queue: time.Since(j.enqueued)}
	if err := j.ctx.Err(); err != nil { // its caller has gone
		e.failed.Add(1)
		j.done(res, err)
		return
	}
	if s.inst == nil && !e.remake(s) {
		e.failed.Add(1)
		j.done(res, taskproto.Errorf(taskproto.CodeExecutorFailed, "wasm instance %s could not be made; see the plugin's log", s.id))
		return
	}
	s.state.Store("busy")
	e.running.Add(1)
	start := time.Now()
	v, err := s.inst.Run(j.ctx, j.task)
	res.Run = time.Since(start)
	e.running.Add(-1)
	s.tasks.Add(1)
	if tl := taskproto.TimelineFrom(j.ctx); tl != nil {
		tl.StampAt(taskproto.StageTaskStart, taskproto.MonotonicAt(start))
		tl.StampAt(taskproto.StageTaskEnd, taskproto.MonotonicAt(start.Add(res.Run)))
	}
	broken := s.inst.Broken()
	if err != nil {
		e.failed.Add(1)
		j.done(res, err)
	} else {
		e.completed.Add(1)
		res.Value = v
		j.done(res, nil)
	}
	if broken { // replaced at once, so that the next task does not wait for it
		e.log.Debug("wasm instance replaced", "instance", s.id, "task", j.task.Kind, "n", j.task.N, "error", err)
		s.inst.Close(context.Background())
		s.inst = nil
		s.restarts.Add(1)
		e.remake(s)
	}
	s.state.Store("idle")
}

// remake gives s a new instance; false when it could not (logged).
func (e *Executor) remake(s *slot) bool {
	s.state.Store("restarting")
	ctx, cancel := context.WithTimeout(context.Background(), instantiateTimeout)
	defer cancel()
	inst, err := e.module.Instantiate(ctx)
	if err != nil {
		e.log.Error("wasm instance could not be made", "instance", s.id, "error", err)
		return false
	}
	s.inst = inst
	return true
}

func (e *Executor) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{
		Name: "wasm",
		Description: fmt.Sprintf("%d wazero instances of %s (≤ %d MiB each) fed from a queue of %d",
			len(e.slots), filepath.Base(e.module.Path()), e.module.MaxMemoryBytes()/BytesPerMB, e.limit),
		Concurrency: len(e.slots),
		PID:         os.Getpid(),
	}
}

func (e *Executor) Stats(context.Context) (taskproto.Stats, error) {
	st := taskproto.Stats{
		Running:   e.running.Load(),
		Queued:    e.queued.Load(),
		Completed: e.completed.Load(),
		Failed:    e.failed.Load(),
		Capacity:  int64(len(e.slots)),
	}
	// The instances live in the plugin's process: its PID is theirs.
	pid := os.Getpid()
	for _, s := range e.slots {
		w := taskproto.WorkerStats{ID: s.id, PID: pid, State: s.state.Load().(string), Tasks: s.tasks.Load(), Restarts: s.restarts.Load()}
		st.Restarts += w.Restarts
		st.Workers = append(st.Workers, w)
	}
	return st, nil
}

// Close waits for the running tasks (their callers cancel them), fails the
// queued ones with shutting_down and frees the instances and the module.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	var left []*job
	for j := e.popLocked(); j != nil; j = e.popLocked() {
		left = append(left, j)
	}
	e.mu.Unlock()
	for _, j := range left {
		e.refuse(j, taskproto.Errorf(taskproto.CodeShuttingDown, "wasm strategy closed before the task ran"))
	}
	e.wg.Wait()
	return e.module.Close(context.Background())
}

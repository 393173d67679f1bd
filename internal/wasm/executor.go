package wasm

import (
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
	"github.com/wslab/wslab/tasks"
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
	tasks.Meter

	slots  []*slot
	queue  tasks.Queue // its lock also guards free and closed
	free   []*slot     // slots not running a task
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
	e.queue.OnDrop = func(j *tasks.Job) {
		e.Queued.Add(-1)
		e.Refuse(j.Done, taskproto.Result{Queue: time.Since(j.Enqueued)}, j.Ctx.Err())
	}
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
	j := tasks.NewJob(ctx, t, done)
	q := &e.queue
	q.Lock()
	var refused error
	switch {
	case e.closed:
		refused = taskproto.Errorf(taskproto.CodeShuttingDown, "wasm strategy is closed")
	case len(e.free) > 0 && q.LenLocked() == 0:
		s := e.free[len(e.free)-1]
		e.free = e.free[:len(e.free)-1]
		e.wg.Add(1)
		q.Unlock()
		go e.serve(s, j)
		return
	case q.LenLocked() >= e.limit:
		refused = taskproto.Errorf(taskproto.CodeOverloaded,
			"wasm queue is full (%d tasks waiting for %d instances); retry later", e.limit, len(e.slots))
	default:
		q.PushLocked(j)
		e.Queued.Add(1)
	}
	q.Unlock()
	if refused != nil {
		e.Refuse(done, taskproto.Result{}, refused)
	}
}

// serve runs j on s, then the jobs queued, one after another in the same
// goroutine, and frees s when none is left: a busy instance costs no
// goroutine per task.
func (e *Executor) serve(s *slot, j *tasks.Job) {
	defer e.wg.Done()
	q := &e.queue
	for j != nil {
		e.runOn(s, j)
		q.Lock()
		if j = q.PopLocked(); j == nil {
			e.free = append(e.free, s)
		} else {
			e.Queued.Add(-1)
		}
		q.Unlock()
	}
}

// runOn runs j on s's instance, making one first if s has none, and
// replaces the instance after answering when the task broke it.
func (e *Executor) runOn(s *slot, j *tasks.Job) {
	queued := time.Since(j.Enqueued)
	if s.inst == nil && j.Ctx.Err() == nil && !e.remake(s) {
		e.Refuse(j.Done, taskproto.Result{Worker: s.id, Queue: queued},
			taskproto.Errorf(taskproto.CodeExecutorFailed, "wasm instance %s could not be made; see the plugin's log", s.id))
		return
	}
	s.state.Store("busy")
	e.Run(j.Ctx, s.inst, j.Task, s.id, queued, j.Done)
	s.tasks.Add(1)
	if s.inst != nil && s.inst.Broken() { // replaced at once, so that the next task does not wait for it
		e.log.Debug("wasm instance replaced", "instance", s.id, "task", j.Task.Kind, "n", j.Task.N)
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
	st := e.Snapshot(int64(len(e.slots)))
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
	e.queue.Lock()
	if e.closed {
		e.queue.Unlock()
		return nil
	}
	e.closed = true
	e.queue.Unlock()
	for _, j := range e.queue.Drain() {
		e.Queued.Add(-1)
		e.Refuse(j.Done, taskproto.Result{Queue: time.Since(j.Enqueued)},
			taskproto.Errorf(taskproto.CodeShuttingDown, "wasm strategy closed before the task ran"))
	}
	e.wg.Wait()
	return e.module.Close(context.Background())
}

package host

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/multiproc"
	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto"
)

const (
	pingEvery = time.Second
	// restartWait bounds how long a task waits for a restarting plugin.
	restartWait = 10 * time.Second
)

// PluginOptions say which plugin a PluginSupervisor runs and how.
type PluginOptions struct {
	// LaunchOptions start each run of the plugin.
	launch.LaunchOptions
	// Config is what the plugin is told, but for Settings, which come
	// from Settings once the plugin has declared its keys.
	Config taskproto.Config
	// Settings checks the configuration's values of the declared keys
	// (config.Config.StrategySettings); its error stops the start.
	Settings func([]taskproto.Key) (map[string]string, error)

	// batches is the server's, whose replies the plugin's answers cause
	// are then written in batches (nil: by writer goroutines).
	batches *replyBatches
}

// PluginSupervisor runs one strategy plugin: it starts the process through
// taskproto/plugin, checks the keys the plugin declares, configures it,
// watches it, and when it dies has internal/supervise restart it. Tasks the
// dead plugin held fail with executor_failed; tasks that arrive while it
// restarts wait for it, up to restartWait.
type PluginSupervisor struct {
	opt PluginOptions
	sup *supervise.Supervisor

	misnamed sync.Once // warns of a binary named unlike its strategy

	mu      sync.Mutex
	cur     *pluginInstance // nil while the plugin is down
	info    taskproto.StrategyInfo
	waiting list.List // of *waitingTask, in arrival order
	closed  bool
}

// waitingTask is a task that arrived while the plugin was down.
type waitingTask struct {
	ctx   context.Context
	task  taskproto.Task
	done  taskproto.Done
	place *list.Element
	stop  func() bool // its ctx watch
	timer *time.Timer // its restartWait
}

// pluginInstance is one run of the plugin process.
type pluginInstance struct {
	proc   *launch.Process
	remote *launch.Remote // the data channel: tasks go here, unless to workers
	// workers, for a plugin that hands the host its workers
	// (StrategyInfo.DirectWorkers), sends tasks straight to them.
	workers *multiproc.Executor
}

// executor is where the instance's tasks go.
func (inst *pluginInstance) executor() taskproto.Executor {
	if inst.workers != nil {
		return inst.workers
	}
	return inst.remote
}

// StartPlugin launches the plugin and returns once it is configured and
// ready for tasks. A value of a key the plugin declares that its checks
// refuse is returned as the error of Settings.
func StartPlugin(ctx context.Context, opt PluginOptions) (*PluginSupervisor, error) {
	s := &PluginSupervisor{opt: opt}
	sup, err := supervise.Start(ctx, supervise.Options{
		Name:  "plugin " + opt.Name,
		Start: s.launch,
		Log:   opt.Logger,
		Up:    func(p supervise.Process) { s.setUp(p.(*pluginInstance)) },
		Down:  func(p supervise.Process, err error) { s.setDown(p.(*pluginInstance), err) },
	})
	if err != nil {
		return nil, err
	}
	s.sup = sup
	return s, nil
}

func (s *PluginSupervisor) launch(ctx context.Context) (supervise.Process, error) {
	opt := s.opt.LaunchOptions
	opt.DirectWorkers = true
	proc, err := launch.Launch(ctx, opt)
	if err != nil {
		return nil, err
	}
	remote, err := s.configure(ctx, proc)
	if err != nil {
		proc.Kill()
		return nil, err
	}
	inst := &pluginInstance{proc: proc, remote: remote}
	if ch := proc.Workers(); ch != nil && remote.Info().DirectWorkers {
		inst.workers = multiproc.NewDispatcher(s.opt.Logger.Named(s.opt.Name), s.opt.batches.hooks(), func(name string, pid int) {
			if err := ch.SendKill(name, pid); err != nil {
				s.opt.Logger.Warn("ask the plugin to replace a worker", "worker", name, "pid", pid, "error", err)
			}
		})
		go inst.attachWorkers(ch)
	}
	s.opt.Logger.Info("plugin ready", "plugin", s.opt.Name, "pid", proc.PID(), "strategy", remote.Info().Description,
		"direct_workers", inst.workers != nil)
	return inst, nil
}

// attachWorkers takes the workers the plugin hands over until the workers
// channel ends (the plugin is killed).
func (inst *pluginInstance) attachWorkers(ch *launch.WorkerChannel) {
	for {
		m, sock, err := ch.Read()
		if err != nil {
			return
		}
		if sock != nil {
			inst.workers.Attach(m.GetSocket(), sock)
		}
	}
}

// configure checks the configuration's values of the keys the plugin
// declares and sends it its configuration.
func (s *PluginSupervisor) configure(ctx context.Context, proc *launch.Process) (*launch.Remote, error) {
	desc, err := proc.Describe(ctx)
	if err != nil {
		return nil, err
	}
	if err := taskproto.CheckKeys(desc.Keys); err != nil {
		return nil, fmt.Errorf("plugin %s declares its configuration wrongly: %w", s.opt.Name, err)
	}
	if desc.Name != s.opt.Name {
		// A renamed copy (to measure one strategy under two configurations)
		// is served; anything else is likely a mistake, and the replies
		// name the strategy, not the file.
		s.misnamed.Do(func() {
			s.opt.Logger.Warn(fmt.Sprintf("the plugin binary %q declares the strategy %q: replies, /stats and /metrics name %q; "+
				"name the binary after its strategy unless it is a renamed copy", s.opt.Name, desc.Name, desc.Name),
				"path", s.opt.Path)
		})
	}
	cfg := s.opt.Config
	if cfg.Settings, err = s.opt.Settings(desc.Keys); err != nil {
		return nil, err
	}
	info, err := proc.Configure(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return proc.Remote(info, s.opt.batches.hooks()), nil
}

// Wait blocks until the plugin dies, and says how.
func (inst *pluginInstance) Wait() error {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	var why error
	for why == nil {
		select {
		case <-inst.remote.Done():
			why = fmt.Errorf("data channel ended: %v", inst.remote.Err())
		case <-t.C:
			why = inst.proc.Alive(2 * pingEvery)
		}
	}
	inst.Kill()
	return why
}

// Kill stops the plugin and what it started; what it still held fails.
func (inst *pluginInstance) Kill() {
	inst.proc.Kill()
	inst.remote.Close()
	if inst.workers != nil {
		inst.workers.Close()
	}
}

func (inst *pluginInstance) PID() int { return inst.proc.PID() }

func (s *PluginSupervisor) setUp(inst *pluginInstance) {
	s.mu.Lock()
	s.cur = inst
	s.info = inst.remote.Info()
	var waiting []*waitingTask
	for e := s.waiting.Front(); e != nil; e = s.waiting.Front() {
		w := s.waiting.Remove(e).(*waitingTask)
		w.place = nil
		waiting = append(waiting, w)
	}
	s.mu.Unlock()
	for _, w := range waiting {
		w.stop()
		w.timer.Stop()
		inst.executor().Submit(w.ctx, w.task, w.done)
	}
}

func (s *PluginSupervisor) setDown(inst *pluginInstance, why error) {
	s.mu.Lock()
	s.cur = nil
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		s.opt.Logger.Error("plugin died", "plugin", s.opt.Name, "pid", inst.proc.PID(), "reason", why)
	}
}

// Submit sends t to the running plugin; while the plugin restarts, t
// waits for it, up to restartWait.
func (s *PluginSupervisor) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	s.mu.Lock()
	if inst := s.cur; inst != nil {
		s.mu.Unlock()
		inst.executor().Submit(ctx, t, done)
		return
	}
	if s.closed {
		s.mu.Unlock()
		done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "plugin %s is stopping", s.opt.Name))
		return
	}
	w := &waitingTask{ctx: ctx, task: t, done: done}
	w.place = s.waiting.PushBack(w)
	w.stop = context.AfterFunc(ctx, func() { s.giveUp(w, ctx.Err()) })
	w.timer = time.AfterFunc(restartWait, func() {
		s.giveUp(w, taskproto.Errorf(taskproto.CodeExecutorFailed, "plugin %s is down and restarting", s.opt.Name))
	})
	s.mu.Unlock()
}

// giveUp answers a task that waited for the plugin in vain.
func (s *PluginSupervisor) giveUp(w *waitingTask, err error) {
	s.mu.Lock()
	if w.place == nil { // handed to the plugin, or answered, first
		s.mu.Unlock()
		return
	}
	s.waiting.Remove(w.place)
	w.place = nil
	s.mu.Unlock()
	w.stop()
	w.timer.Stop()
	w.done(taskproto.Result{}, err)
}

// Info describes the plugin's strategy.
func (s *PluginSupervisor) Info() taskproto.StrategyInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// Stats are the plugin's own.
func (s *PluginSupervisor) Stats(ctx context.Context) (taskproto.Stats, error) {
	s.mu.Lock()
	inst := s.cur
	s.mu.Unlock()
	if inst == nil {
		return taskproto.Stats{}, nil
	}
	st, err := inst.proc.Stats(ctx)
	if err != nil || inst.workers == nil {
		return st, err
	}
	// The plugin knows its workers' processes; the host, which sends them
	// tasks, knows what they do.
	ws, _ := inst.workers.Stats(ctx)
	st.Running, st.Queued, st.Completed, st.Failed = ws.Running, ws.Queued, ws.Completed, ws.Failed
	for i, w := range st.Workers {
		for _, h := range ws.Workers {
			if h.ID == w.ID {
				st.Workers[i].State, st.Workers[i].Tasks = h.State, h.Tasks
			}
		}
	}
	return st, nil
}

// Ready reports whether the plugin is up.
func (s *PluginSupervisor) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil
}

// Status is the supervisor's: the plugin's PID and its restarts.
func (s *PluginSupervisor) Status() supervise.Status { return s.sup.Status() }

// Close stops supervising and stops the plugin; tasks waiting for it fail
// with shutting_down. It is safe to call more than once, from several
// goroutines.
func (s *PluginSupervisor) Close() error {
	s.mu.Lock()
	s.closed = true
	var waiting []*waitingTask
	for e := s.waiting.Front(); e != nil; e = e.Next() {
		waiting = append(waiting, e.Value.(*waitingTask))
	}
	s.mu.Unlock()
	for _, w := range waiting {
		s.giveUp(w, taskproto.Errorf(taskproto.CodeShuttingDown, "plugin %s is stopping", s.opt.Name))
	}
	s.sup.Stop()
	return nil
}

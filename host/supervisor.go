package host

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

const (
	pingEvery  = time.Second
	startLimit = 15 * time.Second
	// restartWait bounds how long a task waits for a restarting plugin.
	restartWait = 10 * time.Second
)

// PluginSupervisor runs one strategy plugin: it starts the process through
// go-plugin, configures it, hands it its data channel, watches it, and when
// it dies has internal/supervise restart it. Tasks the dead plugin held
// fail with executor_failed; tasks that arrive while it restarts wait for
// it, up to restartWait.
type PluginSupervisor struct {
	name, path string
	cfg        taskproto.Config
	log        hclog.Logger
	sup        *supervise.Supervisor

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
	client  *goplugin.Client
	rpc     goplugin.ClientProtocol
	control *plugin.Client
	remote  *plugin.Remote
	pid     int
	killed  sync.Once
}

// StartPlugin launches the plugin binary at path and returns once it is
// configured and ready for tasks.
func StartPlugin(ctx context.Context, name, path string, cfg taskproto.Config, log hclog.Logger) (*PluginSupervisor, error) {
	s := &PluginSupervisor{name: name, path: path, cfg: cfg, log: log}
	sup, err := supervise.Start(ctx, supervise.Options{
		Name:  "plugin " + name,
		Start: s.launch,
		Log:   log,
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
	ours, theirs, err := plugin.NewChannel("plugin-" + s.name)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.path)
	cmd.Env = []string{"WSLAB_LOG_LEVEL=" + s.log.GetLevel().String(), plugin.DataFDEnv + "=3"}
	cmd.ExtraFiles = []*os.File{theirs}
	supervise.Prepare(cmd, true)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  plugin.Handshake,
		VersionedPlugins: plugin.VersionedPlugins,
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          true,
		StartTimeout:     startLimit,
		Logger:           s.log.Named(s.name),
	})
	inst, err := s.connect(ctx, client, ours)
	theirs.Close() // the plugin has its own copy, or never will
	if err != nil {
		client.Kill()
		ours.Close()
		return nil, fmt.Errorf("start plugin %s (%s): %w", s.name, s.path, err)
	}
	return inst, nil
}

func (s *PluginSupervisor) connect(ctx context.Context, client *goplugin.Client, data net.Conn) (*pluginInstance, error) {
	var (
		rpc goplugin.ClientProtocol
		err error
	)
	// The parent-death signal is tied to the thread that starts the child.
	supervise.OnSpawnerThread(func() { rpc, err = client.Client() })
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense(plugin.PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	control, ok := raw.(*plugin.Client)
	if !ok {
		return nil, fmt.Errorf("dispense: unexpected plugin type %T", raw)
	}
	ctx, cancel := context.WithTimeout(ctx, startLimit)
	defer cancel()
	info, err := control.Configure(ctx, s.cfg)
	if err != nil {
		return nil, err
	}
	inst := &pluginInstance{client: client, rpc: rpc, control: control, remote: plugin.NewRemote(data, info, "plugin "+s.name)}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	s.log.Info("plugin ready", "plugin", s.name, "pid", inst.pid, "strategy", info.Description)
	return inst, nil
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
			if inst.client.Exited() {
				why = errors.New("plugin process exited")
			} else if err := inst.rpc.Ping(); err != nil {
				why = fmt.Errorf("ping: %w", err)
			}
		}
	}
	inst.Kill()
	return why
}

// Kill stops the plugin and what it started: go-plugin's Kill stops the
// plugin process alone (go-plugin #136), so its process group goes too.
func (inst *pluginInstance) Kill() {
	inst.killed.Do(func() {
		inst.client.Kill()  // asks the plugin to stop (its executor closes), then kills it
		inst.remote.Close() // fails what is still pending
		killGroup(inst.pid)
	})
}

func (inst *pluginInstance) PID() int { return inst.pid }

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
		inst.remote.Submit(w.ctx, w.task, w.done)
	}
}

func (s *PluginSupervisor) setDown(inst *pluginInstance, why error) {
	s.mu.Lock()
	s.cur = nil
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		s.log.Error("plugin died", "plugin", s.name, "pid", inst.pid, "reason", why)
	}
}

// Submit sends t to the running plugin; while the plugin restarts, t
// waits for it, up to restartWait.
func (s *PluginSupervisor) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	s.mu.Lock()
	if inst := s.cur; inst != nil {
		s.mu.Unlock()
		inst.remote.Submit(ctx, t, done)
		return
	}
	if s.closed {
		s.mu.Unlock()
		done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeShuttingDown, "plugin %s is stopping", s.name))
		return
	}
	w := &waitingTask{ctx: ctx, task: t, done: done}
	w.place = s.waiting.PushBack(w)
	w.stop = context.AfterFunc(ctx, func() { s.giveUp(w, ctx.Err()) })
	w.timer = time.AfterFunc(restartWait, func() {
		s.giveUp(w, taskproto.Errorf(taskproto.CodeExecutorFailed, "plugin %s is down and restarting", s.name))
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
	return inst.control.Stats(ctx)
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
		s.giveUp(w, taskproto.Errorf(taskproto.CodeShuttingDown, "plugin %s is stopping", s.name))
	}
	s.sup.Stop()
	return nil
}

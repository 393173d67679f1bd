package host

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/wslab/wslab/taskproto"
)

// Restart policy of a dead plugin.
const (
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 10 * time.Second
	stableAfter = 30 * time.Second // a plugin up this long restarts at minBackoff
	pingEvery   = time.Second
	startLimit  = 15 * time.Second
)

// PluginSupervisor runs one strategy plugin: it starts the process through
// go-plugin, configures it, watches it, and when it dies restarts it with
// backoff. Tasks sent to a dead plugin fail with executor_failed; tasks that
// arrive while it restarts wait for it, up to RestartWait.
type PluginSupervisor struct {
	name, path string
	cfg        taskproto.Config
	log        hclog.Logger
	// RestartWait bounds how long a task waits for a restarting plugin.
	RestartWait time.Duration

	mu   sync.Mutex
	cur  *pluginInstance // nil while the plugin is down
	up   chan struct{}   // closed while cur != nil
	info taskproto.StrategyInfo

	restarts atomic.Int64
	stop     chan struct{}
	done     chan struct{}
}

type pluginInstance struct {
	client  *plugin.Client
	rpc     plugin.ClientProtocol
	exec    *taskproto.RemoteExecutor
	pid     int
	started time.Time
}

// StartPlugin launches the plugin binary at path and returns once it is
// configured and ready for tasks.
func StartPlugin(ctx context.Context, name, path string, cfg taskproto.Config, log hclog.Logger) (*PluginSupervisor, error) {
	s := &PluginSupervisor{
		name: name, path: path, cfg: cfg, log: log,
		RestartWait: 10 * time.Second,
		up:          make(chan struct{}),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	inst, err := s.launch(ctx)
	if err != nil {
		return nil, err
	}
	s.setUp(inst)
	go s.supervise(inst)
	return s, nil
}

func (s *PluginSupervisor) launch(ctx context.Context) (*pluginInstance, error) {
	cmd := exec.Command(s.path)
	cmd.Env = []string{"WSLAB_LOG_LEVEL=" + s.log.GetLevel().String()}
	setPluginProcAttr(cmd)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  taskproto.Handshake,
		Plugins:          taskproto.PluginMap,
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          true,
		StartTimeout:     startLimit,
		Logger:           s.log.Named(s.name),
	})
	inst, err := s.connect(ctx, client)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start plugin %s (%s): %w", s.name, s.path, err)
	}
	return inst, nil
}

func (s *PluginSupervisor) connect(ctx context.Context, client *plugin.Client) (*pluginInstance, error) {
	rpc, err := client.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense(taskproto.PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	pc, ok := raw.(*taskproto.PluginClient)
	if !ok {
		return nil, fmt.Errorf("dispense: unexpected plugin type %T", raw)
	}
	ctx, cancel := context.WithTimeout(ctx, startLimit)
	defer cancel()
	rexec, err := pc.Start(ctx, s.cfg)
	if err != nil {
		return nil, err
	}
	inst := &pluginInstance{client: client, rpc: rpc, exec: rexec, started: time.Now()}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	s.log.Info("plugin ready", "plugin", s.name, "pid", inst.pid, "strategy", rexec.Info().Description)
	return inst, nil
}

func (s *PluginSupervisor) setUp(inst *pluginInstance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = inst
	s.info = inst.exec.Info()
	close(s.up)
}

func (s *PluginSupervisor) setDown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = nil
	s.up = make(chan struct{})
}

func (s *PluginSupervisor) supervise(inst *pluginInstance) {
	defer close(s.done)
	backoff := minBackoff
	for {
		reason := s.watch(inst)
		if reason == nil { // stopping
			inst.stop()
			return
		}
		s.setDown()
		s.log.Error("plugin died", "plugin", s.name, "pid", inst.pid, "reason", reason)
		inst.stop()
		if time.Since(inst.started) > stableAfter {
			backoff = minBackoff
		}
		for inst = nil; inst == nil; {
			select {
			case <-time.After(backoff):
			case <-s.stop:
				return
			}
			next, err := s.launch(context.Background())
			backoff = min(backoff*2, maxBackoff)
			if err != nil {
				s.log.Error("plugin restart failed", "plugin", s.name, "error", err, "retry_in", backoff)
				continue
			}
			inst = next
			n := s.restarts.Add(1)
			s.log.Warn("plugin restarted", "plugin", s.name, "pid", inst.pid, "restarts", n)
			s.setUp(inst)
		}
	}
}

// watch blocks until the plugin dies (the reason) or the supervisor stops (nil).
func (s *PluginSupervisor) watch(inst *pluginInstance) error {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return nil
		case <-inst.exec.Done():
			return fmt.Errorf("task stream ended: %w", inst.exec.Err())
		case <-t.C:
			if inst.client.Exited() {
				return errors.New("plugin process exited")
			}
			if err := inst.rpc.Ping(); err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		}
	}
}

func (inst *pluginInstance) stop() {
	inst.exec.Close() // fails what is pending: the process is going away
	inst.client.Kill()
	killProcessGroup(inst.pid)
}

// instance returns the running plugin, waiting for a restart if needed.
func (s *PluginSupervisor) instance(ctx context.Context) (*pluginInstance, error) {
	s.mu.Lock()
	inst, up := s.cur, s.up
	s.mu.Unlock()
	if inst != nil {
		return inst, nil
	}
	wait := time.NewTimer(s.RestartWait)
	defer wait.Stop()
	select {
	case <-up:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cur != nil {
			return s.cur, nil
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
	case <-s.stop:
		return nil, taskproto.Errorf(taskproto.CodeShuttingDown, "plugin %s is stopping", s.name)
	}
	return nil, taskproto.Errorf(taskproto.CodeExecutorFailed, "plugin %s is down and restarting", s.name)
}

// Execute runs t on the plugin.
func (s *PluginSupervisor) Execute(ctx context.Context, t taskproto.Task) (taskproto.Result, error) {
	inst, err := s.instance(ctx)
	if err != nil {
		return taskproto.Result{}, err
	}
	return inst.exec.Execute(ctx, t)
}

// Submit sends t to the running plugin at once, so that tasks reach it in
// call order; while the plugin restarts, t waits for it in a goroutine.
func (s *PluginSupervisor) Submit(ctx context.Context, t taskproto.Task) func() (taskproto.Result, error) {
	s.mu.Lock()
	inst := s.cur
	s.mu.Unlock()
	if inst != nil {
		return inst.exec.Submit(ctx, t)
	}
	return taskproto.Async(func() (taskproto.Result, error) { return s.Execute(ctx, t) })
}

// Info describes the plugin's strategy.
func (s *PluginSupervisor) Info() taskproto.StrategyInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// Stats are the plugin's own, with the supervisor's restart count.
func (s *PluginSupervisor) Stats(ctx context.Context) (taskproto.Stats, error) {
	s.mu.Lock()
	inst := s.cur
	s.mu.Unlock()
	if inst == nil {
		return taskproto.Stats{Restarts: s.restarts.Load()}, nil
	}
	st, err := inst.exec.Stats(ctx)
	st.Restarts += s.restarts.Load()
	return st, err
}

// Ready reports whether the plugin is up.
func (s *PluginSupervisor) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil
}

// PID is the plugin process's, 0 while it is down.
func (s *PluginSupervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	return s.cur.pid
}

// Restarts counts the restarts since the host started.
func (s *PluginSupervisor) Restarts() int64 { return s.restarts.Load() }

// Close stops supervising and stops the plugin.
func (s *PluginSupervisor) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return nil
}

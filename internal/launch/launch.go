package launch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
	"github.com/wslab/wslab/taskproto/tracing"
	"github.com/wslab/wslab/taskproto/wire"
)

// StartTimeout bounds a plugin's handshake, and each of Describe and
// Configure.
const StartTimeout = 15 * time.Second

// LaunchOptions say how to start a plugin.
type LaunchOptions struct {
	Name   string // names the plugin in logs and errors
	Path   string // its binary
	Logger hclog.Logger
	// Checksum, when set, is the SHA-256 the binary must have: go-plugin
	// checks it before it runs the binary (SecureConfig).
	Checksum []byte
	// Verify, when set, runs before each start, which its error refuses:
	// the check of what the plugin reads besides its binary
	// (CheckSupportFiles), which Checksum does not cover.
	Verify func() error
	// DirectWorkers offers the plugin a workers channel (file descriptor
	// 4): a plugin that runs worker processes may hand their sockets to
	// the caller, which then sends them tasks itself (Process.Workers).
	DirectWorkers bool
	// Reattach, when set, is a plugin started by hand in debug mode
	// (plugin.DebugEnv), which Launch joins instead of starting one: no
	// checksum applies, and Kill leaves the process to end by itself when
	// its data channel closes.
	Reattach *wire.Reattach
}

// Process is a plugin started by Launch: handshaken, not yet configured.
// The host starts its strategy plugins this way, and so does the
// conformance kit, so that a plugin is checked as the host runs it.
type Process struct {
	name    string
	cmd     *exec.Cmd
	client  *goplugin.Client
	rpc     goplugin.ClientProtocol
	control *Client
	data    net.Conn
	workers *WorkerChannel // nil unless LaunchOptions.DirectWorkers
	killed  sync.Once
	notRun  atomic.Bool // its binary could not be executed
	// expected, once set (ExpectExit), says why the process's end is no
	// error.
	expected atomic.Pointer[string]
	pid      int // of a reattached plugin, which has no cmd
}

// gone says whether the plugin's process has ended, or never began.
func (p *Process) gone() bool { return p.notRun.Load() || p.client.Exited() }

// ExpectExit says that the plugin's process is about to end on purpose,
// for why (the conformance kit kills it to check what a crash does): its
// exit is logged as info that says why, not as go-plugin's error.
func (p *Process) ExpectExit(why string) { p.expected.Store(&why) }

// Launch starts the plugin binary in a process group of its own, with its
// data channel as file descriptor 3, and completes go-plugin's handshake
// (protocol version, AutoMTLS). A plugin of another contract version is
// refused with an error naming both versions.
func Launch(ctx context.Context, opt LaunchOptions) (*Process, error) {
	if opt.Reattach != nil {
		return reattach(ctx, opt)
	}
	if opt.Verify != nil {
		if err := opt.Verify(); err != nil {
			return nil, fmt.Errorf("%s: %w", opt.Path, err)
		}
	}
	ours, theirs, err := wire.NewChannel("plugin-" + opt.Name)
	if err != nil {
		return nil, err
	}
	defer theirs.Close() // the plugin has its own copy, or never will
	log := opt.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cmd := exec.Command(opt.Path)
	// The plugin inherits the host's environment, with the host's own
	// variables last so that they win over any inherited copy.
	cmd.Env = append(os.Environ(), "WSLAB_LOG_LEVEL="+log.GetLevel().String(), wire.DataFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{theirs}
	var workers *WorkerChannel
	if opt.DirectWorkers {
		var theirWorkers *os.File
		if workers, theirWorkers, err = newWorkerChannel(); err != nil {
			ours.Close()
			return nil, err
		}
		defer theirWorkers.Close()
		cmd.Env = append(cmd.Env, WorkersFDEnv+"=4")
		cmd.ExtraFiles = append(cmd.ExtraFiles, theirWorkers)
	}
	supervise.Prepare(cmd, true)
	var secure *goplugin.SecureConfig
	if opt.Checksum != nil {
		secure = &goplugin.SecureConfig{Checksum: opt.Checksum, Hash: sha256.New()}
	}
	p := &Process{name: opt.Name, cmd: cmd, data: ours, workers: workers}
	tail := &stderrTail{}
	p.client = goplugin.NewClient(&goplugin.ClientConfig{
		Stderr:           tail,
		HandshakeConfig:  plugin.Handshake,
		VersionedPlugins: versionedPlugins,
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true, // cmd.Env holds it already
		Managed:          true,
		StartTimeout:     StartTimeout,
		Logger:           pluginLog{Logger: log.Named(opt.Name), p: p},
		GRPCDialOptions:  tracing.GRPCDialOptions(),
	})
	// A caller that gives up (the host stopping) ends the handshake too.
	stop := context.AfterFunc(ctx, p.client.Kill)
	err = p.connect()
	stop()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		err = p.startError(err, tail, opt)
		p.Kill()
		return nil, err
	}
	return p, nil
}

// startError is err, the failed handshake's, as the caller reports it:
// a plugin that ended before it (a panic, a missing module) is a
// StartError with its last words; other failures are explained.
// Launch's callers name the plugin; the error names its binary.
func (p *Process) startError(err error, tail *stderrTail, opt LaunchOptions) error {
	if se := execFailure(opt.Path, err); se != nil {
		p.notRun.Store(true)
		return se
	}
	for deadline := time.Now().Add(exitWait); !p.client.Exited() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if p.client.Exited() {
		how := "its exit status is unknown"
		if st := p.cmd.ProcessState; st != nil {
			how = st.String()
		}
		lines := tail.Lines()
		return &StartError{Path: opt.Path, How: how, Stderr: lines, Hint: hintFor(opt.Path, lines)}
	}
	return fmt.Errorf("%s: %w", opt.Path, explain(err, opt))
}

func (p *Process) connect() error {
	var err error
	// The parent-death signal is tied to the thread that starts the child.
	supervise.OnSpawnerThread(func() { p.rpc, err = p.client.Client() })
	if err != nil {
		return err
	}
	raw, err := p.rpc.Dispense(plugin.PluginName)
	if err != nil {
		return fmt.Errorf("dispense: %w", err)
	}
	control, ok := raw.(*Client)
	if !ok {
		return fmt.Errorf("dispense: unexpected plugin type %T", raw)
	}
	p.control = control
	return nil
}

// explain says in the host's words what go-plugin's start errors mean.
func explain(err error, opt LaunchOptions) error {
	switch {
	case errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
		have, herr := FileChecksum(opt.Path)
		if herr != nil {
			return fmt.Errorf("refused: its SHA-256 is not the manifest's, and it cannot be read: %w", herr)
		}
		return fmt.Errorf("refused: its SHA-256 is %x, the manifest says %x (rebuild it with make build, or check who changed it): %w",
			have, opt.Checksum, err)
	case strings.Contains(err.Error(), "incompatible API version"):
		return fmt.Errorf("refused: it speaks another version of the wslab plugin contract than this host, which speaks version %d "+
			"(rebuild the plugin against this taskproto/plugin): %w", plugin.ProtocolVersion, err)
	}
	return err
}

// Describe asks the plugin for its name and the keys it reads.
func (p *Process) Describe(ctx context.Context) (wire.Description, error) {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	return p.control.Describe(ctx)
}

// Configure sends the plugin its configuration; the plugin builds its
// strategy and serves tasks on its data channel. It succeeds once per
// process (a refused configuration may be followed by another).
func (p *Process) Configure(ctx context.Context, cfg taskproto.Config) (taskproto.StrategyInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	return p.control.Configure(ctx, cfg)
}

// Remote is the executor whose tasks run in the configured plugin; batch
// may be the zero value (see BatchHooks).
func (p *Process) Remote(info taskproto.StrategyInfo, batch BatchHooks) *Remote {
	return NewRemote(p.data, info, "plugin "+p.name, batch)
}

// Workers is the workers channel (LaunchOptions.DirectWorkers), nil when
// none was offered. It is the caller's to read once the plugin says it
// hands over its workers (StrategyInfo.DirectWorkers).
func (p *Process) Workers() *WorkerChannel { return p.workers }

// Data is the host's end of the plugin's data channel, for a caller that
// speaks the frames itself (the conformance kit) instead of using Remote.
func (p *Process) Data() net.Conn { return p.data }

// Stats asks the plugin for its statistics.
func (p *Process) Stats(ctx context.Context) (taskproto.Stats, error) { return p.control.Stats(ctx) }

// Alive says why the plugin is not alive, or nil: its process exited, or
// it does not answer go-plugin's health check within limit (go-plugin's
// Ping has no deadline of its own: a stopped or wedged plugin would hold
// it for good).
func (p *Process) Alive(limit time.Duration) error {
	if p.client.Exited() {
		return errors.New("plugin process exited")
	}
	pinged := make(chan error, 1)
	go func() { pinged <- p.rpc.Ping() }() // ends when the plugin answers or is killed
	select {
	case err := <-pinged:
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		return nil
	case <-time.After(limit):
		return fmt.Errorf("ping: no answer within %v", limit)
	}
}

// PID is the plugin process's ID, which is also its process group's.
func (p *Process) PID() int {
	if p.cmd == nil {
		return p.pid
	}
	return p.cmd.Process.Pid
}

// killGrace is how long Kill lets go-plugin stop the plugin (it allows a
// graceful exit 2 s) before it kills the plugin's process group.
const killGrace = 3 * time.Second

// Kill stops the plugin and whatever it started: go-plugin's Kill asks the
// plugin to stop (its executor closes) and kills the plugin process alone
// (go-plugin #136), so its process group goes too. go-plugin's Kill returns
// only once the plugin's output pipes have closed, which a child holding
// them delays until the group is killed: so the group is killed once
// go-plugin has had killGrace. Closing the data channel fails whatever is
// still pending on it. Safe to call more than once.
func (p *Process) Kill() {
	p.killed.Do(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.client.Kill()
		}()
		select {
		case <-done:
		case <-time.After(killGrace):
			p.killGroup()
			<-done
		}
		p.data.Close()
		if p.workers != nil {
			p.workers.Close()
		}
		p.killGroup()
	})
}

// killGroup kills the plugin's process group, unless the plugin was
// started by hand: that one ends when its data channel closes.
func (p *Process) killGroup() {
	if p.cmd != nil {
		supervise.KillGroup(p.cmd)
	}
}

// reattach joins the plugin opt.Reattach describes: its data channel
// first, which it accepts once, then its control service.
func reattach(ctx context.Context, opt LaunchOptions) (*Process, error) {
	r := opt.Reattach
	if r.Version != plugin.ProtocolVersion {
		return nil, fmt.Errorf("reattach to %s (pid %d): it speaks version %d of the wslab plugin contract, this host version %d",
			r.Strategy, r.PID, r.Version, plugin.ProtocolVersion)
	}
	var d net.Dialer
	data, err := d.DialContext(ctx, "unix", r.Data)
	if err != nil {
		return nil, fmt.Errorf("reattach to %s (pid %d): its data channel: %w (is it still running, in debug mode?)", r.Strategy, r.PID, err)
	}
	var addr net.Addr
	switch r.Network {
	case "unix":
		addr = &net.UnixAddr{Name: r.Addr, Net: "unix"}
	case "tcp":
		if addr, err = net.ResolveTCPAddr("tcp", r.Addr); err != nil {
			data.Close()
			return nil, fmt.Errorf("reattach to %s: %w", r.Strategy, err)
		}
	default:
		data.Close()
		return nil, fmt.Errorf("reattach to %s: control address network %q is neither unix nor tcp", r.Strategy, r.Network)
	}
	log := opt.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	p := &Process{name: opt.Name, data: data, pid: r.PID}
	p.client = goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: plugin.Handshake,
		// go-plugin negotiates no version with a plugin it reattaches to.
		Plugins: versionedPlugins[plugin.ProtocolVersion],
		Reattach: &goplugin.ReattachConfig{
			Protocol: goplugin.ProtocolGRPC, ProtocolVersion: r.Version, Addr: addr, Pid: r.PID, Test: true,
		},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           pluginLog{Logger: log.Named(opt.Name), p: p},
		GRPCDialOptions:  tracing.GRPCDialOptions(),
	})
	if err := p.connect(); err != nil {
		p.Kill()
		return nil, fmt.Errorf("reattach to %s (pid %d): %w", r.Strategy, r.PID, err)
	}
	return p, nil
}

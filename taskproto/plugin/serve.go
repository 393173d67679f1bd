package plugin

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/tracing"
	"github.com/wslab/wslab/taskproto/wire"
	"github.com/wslab/wslab/tasks"
)

// Strategy is what a strategy plugin serves.
type Strategy struct {
	Name        string
	Description string // one line, shown by `host --describe`
	// Keys are the configuration keys New reads; the host checks the
	// file's values and hands New their effective values in cfg.Settings.
	Keys []taskproto.Key
	// New builds the strategy once the host has sent its configuration.
	New Factory
}

// Serve runs a strategy plugin: it answers the host's handshake, describes
// the strategy and its keys, builds the executor when the host sends its
// configuration, and serves tasks on the data channel until the host stops
// it. It exits the process when the host goes away, even by SIGKILL: the
// data channel then ends, and until it is served the plugin watches its
// parent. A strategy whose keys are ill-declared does not start.
func Serve(s Strategy) {
	name := s.Name
	log := hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Output:     os.Stderr,
		JSONFormat: os.Getenv(DebugEnv) == "", // the host re-levels JSON lines on its own logger
		Level:      hclog.LevelFromString(os.Getenv("WSLAB_LOG_LEVEL")),
	})
	if err := taskproto.CheckKeys(s.Keys); err != nil {
		log.Error("the strategy declares its configuration wrongly", "error", err)
		os.Exit(1)
	}
	if os.Getenv(DebugEnv) != "" {
		serveDebug(s, log)
		return
	}
	data, err := inheritedDataChannel()
	if err != nil {
		log.Error("no data channel: this binary is a wslab strategy plugin, started by the host; "+
			"to start it by hand (under a debugger, say), set "+DebugEnv+"=1 and give the host what it prints", "error", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ExitWithParent(ctx, log, 250*time.Millisecond)
	stopProfile := StartProfile(name)
	stopTracing := tracing.Begin("wslab-plugin-"+name, log)
	srv := &controlServer{strategy: s, log: log, data: inherited(data), exit: func(code int) { stopTracing(); stopProfile(); os.Exit(code) }}
	plugin.Serve(serveConfig(srv))
	srv.close()
	stopTracing()
	stopProfile()
}

// serveConfig is go-plugin's configuration for serving srv's control
// service, traced when tracing is on.
func serveConfig(srv *controlServer) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: {PluginName: &executorPlugin{server: srv}}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(append(opts, tracing.GRPCServerOptions()...))
		},
		Logger: srv.log,
	}
}

// ExitWithParent exits the process once its parent is gone (the process is
// re-parented), until ctx ends. Serve watches its plugin so; a process a
// strategy starts should watch the plugin too. go-plugin does not notice a
// dead host (go-plugin #10), and Pdeathsig alone depends on which host
// thread started the child.
func ExitWithParent(ctx context.Context, log hclog.Logger, every time.Duration) {
	parent := os.Getppid()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if os.Getppid() != parent {
				log.Error("parent process exited, exiting", "parent", parent)
				os.Exit(3)
			}
		}
	}
}

// controlServer is the plugin's side of the control service.
type controlServer struct {
	pb.UnimplementedExecutorServer
	strategy Strategy
	log      hclog.Logger
	data     *dataChannel
	// exit ends the process once the data channel has ended; nil in tests.
	exit func(code int)

	mu      sync.Mutex
	exec    taskproto.Executor
	refused atomic.Int64 // tasks refused before the strategy saw them
}

func (s *controlServer) executor() taskproto.Executor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exec
}

func (s *controlServer) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	return wire.DescribeToPB(wire.Description{Name: s.strategy.Name, Description: s.strategy.Description, Keys: s.strategy.Keys}), nil
}

func (s *controlServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exec != nil {
		return nil, status.Error(codes.FailedPrecondition, "plugin is already configured")
	}
	data, err := s.data.wait(ctx)
	if err != nil {
		return nil, err
	}
	if s.strategy.New == nil {
		return nil, status.Error(codes.Unimplemented, "plugin has no executor factory")
	}
	cfg := wire.ConfigFromPB(req.GetConfig())
	settings, err := taskproto.ApplyKeys(cfg.Settings, s.strategy.Keys)
	if err != nil {
		return nil, wire.ConfigureError(err)
	}
	cfg.Settings = settings
	exec, err := s.strategy.New(cfg, s.log)
	if err != nil {
		return nil, wire.ConfigureError(fmt.Errorf("build executor: %w", err))
	}
	s.exec = exec
	info := exec.Info()
	s.log.Info("configured", "strategy", info.Name, "concurrency", info.Concurrency)
	var served taskproto.Executor = exec
	if cfg.Limits != (taskproto.Limits{}) {
		served = &bounded{Executor: exec, limits: cfg.Limits, refused: &s.refused}
	}
	go s.serveTasks(data, served)
	return &pb.ConfigureResponse{Info: wire.InfoToPB(info)}, nil
}

// serveTasks serves the data channel; when the host closes it, or dies,
// the plugin has nothing left to do and exits.
func (s *controlServer) serveTasks(data net.Conn, exec taskproto.Executor) {
	err := wire.ServeTasks(context.Background(), data, exec, s.log, wire.PluginHop)
	if err != nil {
		s.log.Error("data channel failed", "error", err)
	} else {
		s.log.Debug("data channel closed by the host")
	}
	s.close()
	if s.exit != nil {
		s.exit(0)
	}
}

// close stops the executor, if it has something to stop.
func (s *controlServer) close() {
	if c, ok := s.executor().(io.Closer); ok {
		if err := c.Close(); err != nil {
			s.log.Warn("close executor", "error", err)
		}
	}
}

func (s *controlServer) Stats(ctx context.Context, _ *pb.StatsRequest) (*pb.StatsResponse, error) {
	exec := s.executor()
	if exec == nil {
		return nil, status.Error(codes.FailedPrecondition, "plugin is not configured")
	}
	st, err := exec.Stats(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "stats: %v", err)
	}
	st.Failed += s.refused.Load()
	if st.Metrics, err = encodeMetrics(metricsRegistry()); err != nil {
		return nil, status.Errorf(codes.Internal, "stats: %v", err)
	}
	return wire.StatsToPB(st), nil
}

// bounded refuses a task of an unknown kind or outside the host's limits
// before its strategy sees it. The host refuses those first; the plugin
// checks again so that its strategy runs only what the limits allow,
// whoever wrote the frame.
type bounded struct {
	taskproto.Executor
	limits  taskproto.Limits
	refused *atomic.Int64 // counted in Stats as failed
}

func (b *bounded) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	if err := tasks.Check(t, b.limits); err != nil {
		b.refused.Add(1)
		done(taskproto.Result{}, err)
		return
	}
	b.Executor.Submit(ctx, t, done)
}

func inheritedDataChannel() (net.Conn, error) {
	fd := os.Getenv(wire.DataFDEnv)
	if fd == "" {
		return nil, fmt.Errorf("%s is not set", wire.DataFDEnv)
	}
	return wire.FileConn(fd)
}

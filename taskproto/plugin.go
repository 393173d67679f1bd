package taskproto

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/wslab/wslab/taskproto/pb"
)

// PluginName is the single plugin a strategy binary serves.
const PluginName = "executor"

// Handshake is shared by the host and every strategy plugin. The cookie only
// stops a plugin binary being run by hand by mistake; AutoMTLS is what
// secures the connection.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "WSLAB_PLUGIN",
	MagicCookieValue: "executor-v1-7f3c2a",
}

// PluginMap is the host's side of the plugin set.
var PluginMap = plugin.PluginSet{PluginName: &ExecutorPlugin{}}

// Factory builds a strategy once the host has sent its configuration.
type Factory func(cfg Config, log hclog.Logger) (Executor, error)

// ExecutorPlugin is the go-plugin glue for the Executor service. The host
// uses it with a nil Factory; a plugin binary with its own.
type ExecutorPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Factory Factory
	Logger  hclog.Logger
}

// GRPCServer registers the Executor service in the plugin process.
func (p *ExecutorPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterExecutorServer(s, newGRPCServer(p.Factory, p.Logger))
	return nil
}

// GRPCClient returns a *PluginClient in the host process.
func (p *ExecutorPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &PluginClient{client: pb.NewExecutorClient(c)}, nil
}

// Serve runs a strategy plugin: it answers the host's handshake, builds the
// executor with factory when the host sends its configuration, and serves
// tasks until the host stops it. It exits the process when the host dies, so
// that a SIGKILLed host leaves no plugin behind.
func Serve(name string, factory Factory) {
	log := hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Output:     os.Stderr,
		JSONFormat: true, // the host re-levels JSON lines on its own logger
		Level:      hclog.LevelFromString(os.Getenv("WSLAB_LOG_LEVEL")),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ExitWithParent(ctx, log, 250*time.Millisecond)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &ExecutorPlugin{Factory: factory, Logger: log}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          log,
	})
}

// ExitWithParent exits the process once its parent is gone (the process is
// re-parented). go-plugin does not notice a dead host (go-plugin #10), and
// Pdeathsig alone depends on which host thread started the child.
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

// PluginClient is the host's handle on a dispensed plugin, before it is
// configured.
type PluginClient struct {
	client pb.ExecutorClient
}

// Start configures the plugin and opens the task stream.
func (p *PluginClient) Start(ctx context.Context, cfg Config) (*RemoteExecutor, error) {
	resp, err := p.client.Configure(ctx, &pb.ConfigureRequest{Config: configToPB(cfg)})
	if err != nil {
		return nil, fmt.Errorf("configure plugin: %w", err)
	}
	return newRemoteExecutor(p.client, infoFromPB(resp.GetInfo()))
}

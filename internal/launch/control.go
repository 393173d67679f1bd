package launch

import (
	"context"
	"fmt"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/plugin"
	"github.com/wslab/wslab/taskproto/wire"
)

// versionedPlugins is the host's side of the plugin set, by protocol
// version: a client of the control service, no server.
var versionedPlugins = map[int]goplugin.PluginSet{
	plugin.ProtocolVersion: {plugin.PluginName: &executorPlugin{}},
}

// executorPlugin is the go-plugin glue for the host's side of the control
// service.
type executorPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

// GRPCServer is never called: the host serves no plugin.
func (*executorPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return fmt.Errorf("the host's side of the %s plugin serves nothing", plugin.PluginName)
}

// GRPCClient returns a *Client in the host process.
func (*executorPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// NewClient is the host's handle on the control service that conn reaches.
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{client: pb.NewExecutorClient(conn)}
}

// Client is the host's handle on a plugin's control service.
type Client struct {
	client pb.ExecutorClient
}

// Describe asks the plugin for its name and the configuration keys it reads.
func (c *Client) Describe(ctx context.Context) (wire.Description, error) {
	resp, err := c.client.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return wire.Description{}, fmt.Errorf("describe plugin: %w", err)
	}
	return wire.DescribeFromPB(resp), nil
}

// Configure sends the plugin its configuration; the plugin builds its
// strategy, starts serving the data channel and describes itself.
func (c *Client) Configure(ctx context.Context, cfg taskproto.Config) (taskproto.StrategyInfo, error) {
	resp, err := c.client.Configure(ctx, &pb.ConfigureRequest{Config: wire.ConfigToPB(cfg)})
	if err != nil {
		if ke := wire.KeyErrorOf(err); ke != nil {
			return taskproto.StrategyInfo{}, ke
		}
		return taskproto.StrategyInfo{}, fmt.Errorf("configure plugin: %w", err)
	}
	return wire.InfoFromPB(resp.GetInfo()), nil
}

// Stats asks the plugin for its statistics.
func (c *Client) Stats(ctx context.Context) (taskproto.Stats, error) {
	resp, err := c.client.Stats(ctx, &pb.StatsRequest{})
	if err != nil {
		return taskproto.Stats{}, fmt.Errorf("plugin stats: %w", err)
	}
	return wire.StatsFromPB(resp), nil
}

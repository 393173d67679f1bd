// Package plugin is how a wslab strategy runs in a process of its own: the
// go-plugin handshake and plugin set, Serve (a strategy plugin's whole
// main), the gRPC control service, and the data channel that carries tasks
// and replies between host and plugin (and between the multiproc plugin and
// its workers), with the task codec they all share.
//
// Which transport carries what, and why: go-plugin's gRPC connection does
// what it is good at (the handshake, AutoMTLS, health, logs, lifecycle,
// Configure and Stats), and tasks travel over a Unix socketpair that the
// host creates and the plugin inherits as file descriptor 3: no file another
// local user could open, no TLS or HTTP/2 framing per task, and frames that
// are ready together leave in one system call.
package plugin

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
)

// ProtocolVersion is the version of the host-plugin contract this package
// speaks. go-plugin negotiates it; a plugin built against another version
// is refused with an error naming both.
//
// Version 3: plugins declare their configuration keys (Describe), and the
// contract's Config lost its strategy-specific fields. Version 2: tasks on
// the data channel (version 1 carried them on a gRPC stream).
const ProtocolVersion = 3

// PluginName is the single plugin a strategy binary serves.
const PluginName = "executor"

// Handshake is shared by the host and every strategy plugin. The cookie only
// stops a plugin binary being run by hand by mistake; AutoMTLS is what
// secures the control connection, and the data channel is a socketpair
// only the two processes hold.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "WSLAB_PLUGIN",
	MagicCookieValue: "executor-v1-7f3c2a",
}

// VersionedPlugins is the host's side of the plugin set, by protocol version.
var VersionedPlugins = map[int]plugin.PluginSet{
	ProtocolVersion: {PluginName: &ExecutorPlugin{}},
}

// Factory builds a strategy once the host has sent its configuration.
type Factory func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error)

// ExecutorPlugin is the go-plugin glue for the control service. The host
// uses it without a server; Serve gives a plugin binary's its own.
type ExecutorPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	server *controlServer // plugin side
}

// GRPCServer registers the control service in the plugin process.
func (p *ExecutorPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterExecutorServer(s, p.server)
	return nil
}

// GRPCClient returns a *Client in the host process.
func (p *ExecutorPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{client: pb.NewExecutorClient(c)}, nil
}

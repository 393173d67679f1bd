// Package plugin is what a wslab strategy needs to run in a process of its
// own: describe the strategy (Strategy: its name, its configuration keys,
// the Factory that builds its taskproto.Executor) and call Serve from main.
// Serve does the rest: the go-plugin handshake with the host, the gRPC
// control service (Describe, Configure, Stats), and the data channel that
// carries tasks and replies (package wire). Metrics is where a strategy
// registers metrics of its own; a strategy that runs processes of its own
// gives them ExitWithParent and StartProfile, as Serve does its plugin.
//
// # Compatibility
//
// ProtocolVersion is the version of the host-plugin contract. A plugin and
// a host of different versions refuse each other at the handshake, with an
// error naming both. Within a version, the names of this package, of
// package taskproto and of package wire keep their meaning; new fields and
// functions may be added. CHANGELOG.md records every change.
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
	"fmt"

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

// Factory builds a strategy once the host has sent its configuration.
type Factory func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error)

// executorPlugin is the go-plugin glue for a plugin's side of the control
// service.
type executorPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	server *controlServer
}

// GRPCServer registers the control service in the plugin process.
func (p *executorPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterExecutorServer(s, p.server)
	return nil
}

// GRPCClient is never called: a plugin is no host.
func (p *executorPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, fmt.Errorf("a strategy plugin has no client side of the %s plugin", PluginName)
}

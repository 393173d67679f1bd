package plugin

import (
	"net"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/taskproto/pb"
)

// NewControlServer is the control service Serve serves for s, with data
// as its data channel: the tests in package plugin_test drive it with the
// host's client (internal/launch), as a host does.
func NewControlServer(s Strategy, data net.Conn) pb.ExecutorServer {
	return &controlServer{strategy: s, log: hclog.NewNullLogger(), data: inherited(data)}
}

//go:build !unix

package launch

import (
	"net"
	"os"

	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/wire"
)

var errNoChannel = wire.ErrNoChannel

// WorkersFDEnv: see the Unix build.
const WorkersFDEnv = "WSLAB_WORKERS_FD"

// WorkerChannel exists on Unix systems only.
type WorkerChannel struct{}

func newWorkerChannel() (*WorkerChannel, *os.File, error) { return nil, nil, errNoChannel }

// OpenWorkerChannel: none on this system.
func OpenWorkerChannel() (*WorkerChannel, error) { return nil, nil }

// SendWorker fails: see errNoChannel.
func (*WorkerChannel) SendWorker(*pb.WorkerSocket, *os.File) error { return errNoChannel }

// SendKill fails: see errNoChannel.
func (*WorkerChannel) SendKill(string, int) error { return errNoChannel }

// Read fails: see errNoChannel.
func (*WorkerChannel) Read() (*pb.WorkerMessage, net.Conn, error) { return nil, nil, errNoChannel }

// Close does nothing.
func (*WorkerChannel) Close() error { return nil }

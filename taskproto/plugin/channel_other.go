//go:build !unix

package plugin

import (
	"errors"
	"net"
	"os"

	"github.com/wslab/wslab/taskproto/pb"
)

var errNoChannel = errors.New("strategy plugins need a Unix system: their data channel is a socketpair")

// NewChannel fails: see errNoChannel.
func NewChannel(string) (net.Conn, *os.File, error) { return nil, nil, errNoChannel }

// FileConn fails: see errNoChannel.
func FileConn(string) (net.Conn, error) { return nil, errNoChannel }

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

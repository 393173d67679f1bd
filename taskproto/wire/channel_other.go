//go:build !unix

package wire

import (
	"errors"
	"net"
	"os"
)

// ErrNoChannel says why a data channel cannot be made here.
var ErrNoChannel = errors.New("strategy plugins need a Unix system: their data channel is a socketpair")

// NewChannel fails: see ErrNoChannel.
func NewChannel(string) (net.Conn, *os.File, error) { return nil, nil, ErrNoChannel }

// FileConn fails: see ErrNoChannel.
func FileConn(string) (net.Conn, error) { return nil, ErrNoChannel }

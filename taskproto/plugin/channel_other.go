//go:build !unix

package plugin

import (
	"errors"
	"net"
	"os"
)

var errNoChannel = errors.New("strategy plugins need a Unix system: their data channel is a socketpair")

// NewChannel fails: see errNoChannel.
func NewChannel(string) (net.Conn, *os.File, error) { return nil, nil, errNoChannel }

// FileConn fails: see errNoChannel.
func FileConn(string) (net.Conn, error) { return nil, errNoChannel }

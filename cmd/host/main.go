// Command host is the wslab WebSocket task server:
//
//	host --config config.ini --plugin semaphore
//
// See package host for what it does.
package main

import (
	"os"

	"github.com/wslab/wslab/host"
)

func main() {
	os.Exit(host.Main(os.Args[1:], os.Stdout, os.Stderr))
}

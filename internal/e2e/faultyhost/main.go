// Command faultyhost is the host with its built-in inproc strategy wrapped
// in internal/attacks (host.MainWrapped): TestAttacksOnInproc builds it, so
// that the attacks run on the inproc rung, inside the host's own process.
// It is never installed: cmd/host calls host.Main, and a test checks that
// internal/attacks is none of its dependencies.
package main

import (
	"os"

	"github.com/wslab/wslab/host"
	"github.com/wslab/wslab/internal/attacks"
)

func main() {
	os.Exit(host.MainWrapped(os.Args[1:], os.Stdout, os.Stderr, attacks.Wrap))
}

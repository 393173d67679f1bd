// Command faultyplugin is the multiproc plugin with its workers wrapped in
// internal/faults and internal/attacks: the end-to-end tests build it as a plugin named
// multiproc in a plugin directory of their own, so that a real host runs
// workers that fail on purpose. It is never installed.
package main

import (
	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/internal/faults"
	"github.com/wslab/wslab/internal/multiproc"
	"github.com/wslab/wslab/taskproto"
)

func main() {
	multiproc.Main(func(e taskproto.Executor) taskproto.Executor { return attacks.Wrap(faults.FromEnv(e)) })
}

// Command fifo is a wslab strategy written in a module of its own, using
// only wslab's public SDK: a fixed number of workers take tasks in arrival
// order from a bounded queue. Build it into the host's plugin directory
// and serve it with `bin/host --plugin fifo` (docs/writing-a-strategy.md).
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

func main() {
	plugin.Serve(plugin.Strategy{
		Name:        "fifo",
		Description: "a fixed number of workers taking tasks in arrival order from a bounded queue",
		Keys:        Keys,
		New: func(cfg taskproto.Config, _ hclog.Logger) (taskproto.Executor, error) {
			return New(cfg)
		},
	})
}

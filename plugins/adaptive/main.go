// Command adaptive is the strategy plugin whose concurrency adapts to the
// latency it observes and which, as CoDel does, sheds with overloaded a
// queue that stands, not one a burst leaves behind
// (internal/strategy/adaptive.go): the worked example of
// docs/writing-a-strategy.md. This file is all the glue a Go strategy needs.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

func main() {
	plugin.Serve(plugin.Strategy{
		Name:        "adaptive",
		Description: "CPU tasks at a concurrency that adapts to their slowdown (AIMD); sheds a queue that stands (CoDel)",
		Keys:        strategy.AdaptiveKeys,
		New: func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error) {
			return strategy.NewAdaptive(cfg, log)
		},
	})
}

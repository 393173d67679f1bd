// Command adaptive is the strategy plugin whose concurrency adapts to the
// latency it observes and which sheds load with overloaded before its
// latency explodes (internal/strategy/adaptive.go): the worked example of
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
		Description: "CPU tasks at a concurrency that adapts to their slowdown (AIMD); sheds what would wait too long",
		Keys:        strategy.AdaptiveKeys,
		New: func(cfg taskproto.Config, _ hclog.Logger) (taskproto.Executor, error) {
			return strategy.NewAdaptive(cfg)
		},
	})
}

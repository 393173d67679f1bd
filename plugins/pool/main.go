// Command pool is the strategy plugin that runs tasks on a fixed pool of
// goroutines ([pool] workers, default the number of CPUs) fed from a bounded
// queue ([pool] queue_size); a full queue answers overloaded.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

func main() {
	plugin.Serve(plugin.Strategy{
		Name:        "pool",
		Description: "tasks run on a fixed pool of goroutines fed from a bounded queue",
		Keys:        strategy.PoolKeys,
		New: func(cfg taskproto.Config, _ hclog.Logger) (taskproto.Executor, error) {
			return strategy.NewPool(cfg)
		},
	})
}

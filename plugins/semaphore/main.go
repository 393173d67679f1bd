// Command semaphore is the strategy plugin that lets at most
// [other] asyn_semaphore tasks run at once; the rest wait in FIFO order.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

func main() {
	plugin.Serve(plugin.Strategy{
		Name:        "semaphore",
		Description: "at most [other] asyn_semaphore tasks run at once; the rest wait in arrival order",
		Keys:        strategy.SemaphoreKeys,
		New: func(cfg taskproto.Config, _ hclog.Logger) (taskproto.Executor, error) {
			return strategy.NewSemaphore(cfg)
		},
	})
}

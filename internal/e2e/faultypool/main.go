// Command faultypool is the pool plugin with its executor wrapped in
// internal/attacks: TestAttacksOnPool builds it as a plugin named pool in a
// plugin directory of its own, so that a real host runs the attacks on the
// pool rung. It is never installed.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

func main() {
	plugin.Serve(plugin.Strategy{
		Name:        "pool",
		Description: "the pool plugin, its tasks replaced by attacks where they are fib 9001..9007 (a test plugin)",
		Keys:        strategy.PoolKeys,
		New: func(cfg taskproto.Config, _ hclog.Logger) (taskproto.Executor, error) {
			e, err := strategy.NewPool(cfg)
			if err != nil {
				return nil, err
			}
			return attacks.Wrap(e), nil
		},
	})
}

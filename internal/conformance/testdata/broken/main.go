// Command broken is a strategy plugin that breaks the contract in the way
// WSLAB_BROKEN names, for the conformance kit's own test: the kit must
// catch each.
package main

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

type broken struct {
	taskproto.Executor
	fault string
}

func (b broken) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	switch {
	case b.fault == "wrong-result" && t.Kind == taskproto.KindFib && t.N == 93:
		done(taskproto.Result{Value: "12200160415121876739"}, nil) // F(93) + 1
		return
	case b.fault == "lost-reply" && t.Kind == taskproto.KindNoop && t.N == 7:
		return // never answered
	case b.fault == "ignore-cancel":
		ctx = context.WithoutCancel(ctx)
	}
	b.Executor.Submit(ctx, t, done)
}

func main() {
	plugin.Serve(plugin.Strategy{
		Name: "broken",
		New: func(cfg taskproto.Config, _ hclog.Logger) (taskproto.Executor, error) {
			return broken{strategy.NewInproc(cfg), os.Getenv("WSLAB_BROKEN")}, nil
		},
	})
}

package plugin_test

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
	"github.com/wslab/wslab/tasks"
)

// unbounded is about the least a strategy can be: each task runs at once
// in a goroutine of its own, with no bound on how many run together.
type unbounded struct {
	run               tasks.Runner
	running, finished atomic.Int64
}

func (s *unbounded) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	s.running.Add(1)
	go func() {
		defer s.running.Add(-1)
		start := time.Now()
		value, err := s.run.Run(ctx, t)
		s.finished.Add(1)
		done(taskproto.Result{Value: value, Worker: "goroutine", Run: time.Since(start)}, err)
	}()
}

func (s *unbounded) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{Name: "unbounded", Description: "a goroutine per task"}
}

func (s *unbounded) Stats(context.Context) (taskproto.Stats, error) {
	return taskproto.Stats{Running: s.running.Load(), Completed: s.finished.Load()}, nil
}

// A strategy plugin's whole main: it names the strategy, declares the keys
// it reads from the host's configuration, and builds the executor once the
// host has sent that configuration. Build it into the host's plugin
// directory (bin/plugins/unbounded) and start the host with
// --plugin unbounded.
func ExampleServe() {
	plugin.Serve(plugin.Strategy{
		Name:        "unbounded",
		Description: "every task at once, in a goroutine of its own",
		Keys: []taskproto.Key{{Section: "unbounded", Name: "greeting", Type: taskproto.KeyString, Default: "hello",
			Help: "an example key: the host checks it and hands New its value"}},
		New: func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error) {
			log.Info("configured", "greeting", cfg.String("unbounded.greeting"))
			return &unbounded{run: tasks.Runner{DataDir: cfg.DataDir, LargeFileName: cfg.LargeFileName}}, nil
		},
	})
}

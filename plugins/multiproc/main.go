// Command multiproc is the strategy plugin that runs tasks in
// [other] multiprocessing_processes worker processes, each its own Go
// runtime, fed over Unix sockets. Started as `multiproc worker ...`, the same
// binary is one of those workers.
package main

import (
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/multiproc"
	"github.com/wslab/wslab/taskproto"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == multiproc.WorkerArg {
		os.Exit(multiproc.WorkerMain(os.Args[2:]))
	}
	taskproto.Serve("multiproc", func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error) {
		opt, err := multiproc.OptionsFrom(cfg, log)
		if err != nil {
			return nil, err
		}
		return multiproc.New(opt)
	})
}

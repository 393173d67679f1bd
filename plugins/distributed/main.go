// Command distributed is the strategy plugin whose tasks travel through NATS
// JetStream to workers, local or on other machines. Started as
// `distributed worker --nats URL ...`, the same binary is such a worker.
package main

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/distributed"
	"github.com/wslab/wslab/taskproto"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == distributed.WorkerArg {
		os.Exit(distributed.WorkerMain(os.Args[2:]))
	}
	taskproto.Serve("distributed", func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return distributed.New(context.Background(), distributed.OptionsFrom(cfg, exe), log)
	})
}

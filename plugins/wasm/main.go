// Command wasm is the strategy plugin that runs the task set compiled to
// WebAssembly (internal/wasm/guest, built by `make build` into
// wasm-modules/tasks.wasm beside this binary) under wazero: the module
// compiled once, a pool of [wasm] instances instances, each with memory of
// its own capped at [wasm] max_memory_mb, io confined to the data
// directory through WASI's preopened directory.
package main

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/wasm"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

func main() {
	plugin.Serve(plugin.Strategy{
		Name:        "wasm",
		Description: "tasks compiled to WebAssembly, run by wazero in a pool of instances with memory of their own",
		Keys:        wasm.Keys,
		New: func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error) {
			return wasm.New(context.Background(), cfg, log)
		},
	})
}

// Command faultywasm is the wasm plugin with the attacks' targets
// (attacks.Env) passed into its guest: the end-to-end tests build it as a
// plugin named wasm in a plugin directory of their own, beside the guest
// built with -tags wasmtest, whose fib tasks 9001..9007 are the attacks of
// internal/attacks run inside the guest. It is never installed.
package main

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/internal/wasm"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

func main() {
	plugin.Serve(plugin.Strategy{
		Name:        "wasm",
		Description: "the wasm strategy running the attack tests' guest",
		Keys:        wasm.Keys,
		New: func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error) {
			return wasm.New(context.Background(), cfg, log, attacks.Env+"="+os.Getenv(attacks.Env))
		},
	})
}

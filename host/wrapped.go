package host

import (
	"io"
	"sync/atomic"

	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/taskproto"
)

// MainWrapped is Main with the built-in inproc strategy's executor wrapped
// in wrap, whenever it is made (at start-up or on a switch back to it):
// for a test binary that runs a task set of its own inside the host's
// process (internal/e2e/faultyhost, which runs internal/attacks on the
// inproc rung). cmd/host calls Main, never this. It is a command's main:
// wrap holds for the process until MainWrapped returns, so two calls of
// Main or MainWrapped must not overlap.
func MainWrapped(args []string, stdout, stderr io.Writer, wrap func(taskproto.Executor) taskproto.Executor) int {
	if wrap != nil {
		inprocWrap.Store(&wrap)
		defer inprocWrap.Store(nil)
	}
	return Main(args, stdout, stderr)
}

// inprocWrap is MainWrapped's wrap while it runs; nil otherwise.
var inprocWrap atomic.Pointer[func(taskproto.Executor) taskproto.Executor]

// newInproc is the built-in strategy, wrapped as MainWrapped says.
func newInproc(cfg taskproto.Config) taskproto.Executor {
	var e taskproto.Executor = strategy.NewInproc(cfg)
	if wrap := inprocWrap.Load(); wrap != nil {
		e = (*wrap)(e)
	}
	return e
}

// Package faults makes a strategy fail on purpose, for tests: a worker that
// panics, leaks memory without end, answers wrongly or never answers. No
// shipped binary imports it; tests build binaries that do (see
// internal/e2e/faultyplugin).
package faults

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/wslab/wslab/taskproto"
)

// Env names the environment variable that chooses the fault, for one task
// kind and n: "panic:fib:13" panics; "hog:cpu:7" allocates memory without
// end; "wrong:cpu:7" answers a wrong result; "stall:cpu:7" never answers
// and ignores cancellation. The host passes its environment to its plugin,
// and the plugin to its workers.
const Env = "WSLAB_WORKER_FAULT"

// Fault is one injected failure; its zero value injects nothing.
type Fault struct {
	Action, Kind string
	N            int64
}

// Parse reads a fault as Env spells it; anything else is no fault.
func Parse(s string) Fault {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Fault{}
	}
	n, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return Fault{}
	}
	return Fault{Action: parts[0], Kind: parts[1], N: n}
}

// FromEnv wraps e with the fault Env names, if any.
func FromEnv(e taskproto.Executor) taskproto.Executor {
	f := Parse(os.Getenv(Env))
	if f.Action == "" {
		return e
	}
	return &executor{Executor: e, fault: f}
}

type executor struct {
	taskproto.Executor
	fault Fault
}

var hogged [][]byte // what the hog fault holds on to

func (x *executor) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	f := x.fault
	if t.Kind != f.Kind || t.N != f.N {
		x.Executor.Submit(ctx, t, done)
		return
	}
	switch f.Action {
	case "wrong":
		done(taskproto.Result{Value: "injected wrong result", Worker: "faulty"}, nil)
	case "stall": // done is never called
	case "panic":
		go panic(fmt.Sprintf("injected fault: %s %d", t.Kind, t.N))
	case "hog":
		go func() {
			for {
				b := make([]byte, 1<<20)
				for i := range b {
					b[i] = byte(i)
				}
				hogged = append(hogged, b)
			}
		}()
	default:
		x.Executor.Submit(ctx, t, done)
	}
}

//go:build wasip1

// Command guest is the task set as a WebAssembly reactor: package tasks,
// built with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared, exporting the
// ABI that package wasm documents (internal/wasm/abi.go) and its host
// runs. `make build` writes it to bin/plugins/wasm-modules/tasks.wasm.
package main

import (
	"context"
	"errors"
	"os"
	"time"
	"unsafe"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// A reactor's main is never called; the runtime starts in _initialize.
func main() {}

// abiVersion is wasm.ABIVersion; the guest imports nothing of the host's
// packages but the tasks it runs.
const abiVersion = 1

const maxKindLen = 64 // wasm.MaxKindLen

var (
	kindBuf [maxKindLen]byte
	kind    []byte // the kind the host wrote, in kindBuf
	out     []byte // the last outcome, kept until the next call
)

//go:wasmexport wslab_abi
func abi() int32 { return abiVersion }

//go:wasmexport wslab_input
func input(n int32) int32 {
	if n < 0 || n > maxKindLen {
		return 0
	}
	kind = kindBuf[:n]
	return int32(uintptr(unsafe.Pointer(&kindBuf[0])))
}

//go:wasmexport wslab_output
func output() int32 {
	if len(out) == 0 {
		return 0
	}
	return int32(uintptr(unsafe.Pointer(&out[0])))
}

// override, when set, runs a task in the place of package tasks when it
// answers true: the tests' attacks (testexports.go, -tags wasmtest) and
// nothing in the module `make build` ships.
var override func(t taskproto.Task) (string, error, bool)

//go:wasmexport wslab_run
func run(n int64) int32 {
	t := taskproto.Task{Kind: string(kind), N: n}
	v, err, done := "", error(nil), false
	if override != nil {
		v, err, done = override(t)
	}
	if !done {
		r := tasks.Runner{DataDir: os.Getenv("WSLAB_DATA_DIR"), LargeFileName: os.Getenv("WSLAB_LARGE_FILE_NAME")}
		v, err = r.Run(hostContext{}, t)
	}
	if err != nil {
		code := ""
		if te := (*taskproto.Error)(nil); errors.As(err, &te) {
			code, err = string(te.Code), errors.New(te.Message)
		}
		out = append(append(append(out[:0], code...), '\n'), err.Error()...)
		return -int32(len(out)) - 1
	}
	out = append(out[:0], v...)
	return int32(len(out))
}

//go:wasmimport wslab cancelled
func cancelled() int32

// hostContext is the context of the host's call in progress: its Err asks
// the host. Its Done is nil (it never closes): a guest goroutine cannot be
// woken by the host, so a sleep is ended by the host instead.
type hostContext struct{}

func (hostContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (hostContext) Done() <-chan struct{}       { return nil }
func (hostContext) Value(any) any               { return nil }

func (hostContext) Err() error {
	if cancelled() != 0 {
		return context.Canceled
	}
	return nil
}

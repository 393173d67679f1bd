// Package taskproto is the contract between the wslab host and its
// strategies: the task and result types, the error codes of the WebSocket
// protocol, the one list of task kinds, and the Executor interface every
// strategy implements, in process or behind a plugin.
//
// It holds types only. How a plugin is started and how tasks travel to it
// is package taskproto/plugin; packages that only speak about tasks (the
// workloads, the WebSocket protocol, the stress client) import this one and
// pull in no RPC machinery.
package taskproto

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Task kinds understood by every strategy.
const (
	KindFib   = "fib"
	KindCPU   = "cpu"
	KindIO    = "io"
	KindSleep = "sleep"
	KindNoop  = "noop"
)

// Kinds lists the task kinds in the order they are documented. It is the
// one list: the protocol parser, the configuration checks, the client and
// the workloads all take their kinds from it.
var Kinds = []string{KindFib, KindCPU, KindIO, KindSleep, KindNoop}

// IsKind reports whether s names a task kind.
func IsKind(s string) bool { return slices.Contains(Kinds, s) }

// Task is one unit of work. N is always explicit: the host fills in the
// default before a task reaches a strategy.
type Task struct {
	Kind string
	// N is the task's argument: fib index, count of integers to sum, bytes
	// to write and read back, or milliseconds to sleep.
	N int64
}

// Result is a task's outcome and where and how long it ran.
type Result struct {
	Value  string
	Worker string
	Queue  time.Duration // waiting for a slot, a goroutine or a worker
	Run    time.Duration // running the task itself
}

// Code is an error code of the WebSocket protocol.
type Code string

const (
	CodeBadRequest     Code = "bad_request"
	CodeUnknownTask    Code = "unknown_task"
	CodeOutOfRange     Code = "out_of_range"
	CodeOverloaded     Code = "overloaded"
	CodeTimeout        Code = "timeout"
	CodeExecutorFailed Code = "executor_failed"
	CodeShuttingDown   Code = "shutting_down"
	CodeInternal       Code = "internal"
	// CodeSandboxDenied: the task did what its sandbox forbids (read or
	// write outside the data directory, open a socket, start a process).
	CodeSandboxDenied Code = "sandbox_denied"
	// CodeResourceExhausted: the task needed more of a resource than its
	// sandbox grants (memory past [wasm] max_memory_mb, or past a
	// multiproc worker's worker_memory_mb); what ran it was replaced.
	CodeResourceExhausted Code = "resource_exhausted"
)

// Error is a task failure that carries a protocol error code.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError turns any error into an *Error. A context's cause decides the code
// when the task was stopped by its context, so that a host can say why
// (timeout, shutting down) rather than merely that it was cancelled.
func AsError(ctx context.Context, err error) *Error {
	var te *Error
	if errors.As(err, &te) {
		return te
	}
	if ctx != nil && ctx.Err() != nil {
		if cause := context.Cause(ctx); errors.As(cause, &te) {
			return te
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Errorf(CodeTimeout, "task ran past its deadline")
		}
		return Errorf(CodeShuttingDown, "task cancelled: %v", context.Cause(ctx))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Errorf(CodeTimeout, "task ran past its deadline")
	}
	return Errorf(CodeInternal, "%v", err)
}

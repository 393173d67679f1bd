// Package taskproto is the contract between the wslab host and its strategy
// plugins: the task and result types, the Executor interface every strategy
// implements, the error codes of the WebSocket protocol, and the go-plugin
// handshake and gRPC service that carry them between processes.
//
// A strategy plugin's main is a call to Serve with a Factory; the host
// dispenses the plugin with PluginMap and drives it through a RemoteExecutor.
//
// The wire format is defined in pb/executor.proto; regenerate the Go code
// with `make proto`.
package taskproto

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// Kinds lists the task kinds in the order they are documented.
var Kinds = []string{KindFib, KindCPU, KindIO, KindSleep, KindNoop}

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

// Code is an error code of the WebSocket protocol (SPEC 3.2).
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

// StrategyInfo describes a strategy.
type StrategyInfo struct {
	Name        string
	Description string
	Concurrency int // tasks that can run at once, 0 when unbounded
	PID         int // process that executes or dispatches tasks
}

// WorkerStats describes one worker of a strategy that has workers.
type WorkerStats struct {
	ID       string
	PID      int
	State    string
	Tasks    int64
	Restarts int64
}

// Stats is a strategy's view of its own work.
type Stats struct {
	Running   int64
	Queued    int64
	Completed int64
	Failed    int64
	Capacity  int64
	Restarts  int64
	Workers   []WorkerStats
}

// Executor runs tasks. Implementations must be safe for concurrent use, must
// return promptly once ctx is done, and must return exactly once per call.
type Executor interface {
	Execute(ctx context.Context, t Task) (Result, error)
	Info() StrategyInfo
	Stats(ctx context.Context) (Stats, error)
}

// Limits bound task arguments (SPEC 4). A task outside them is refused with
// out_of_range before it reaches a strategy.
type Limits struct {
	MaxFibN    int64
	MaxCPUN    int64
	MaxIOBytes int64
	MaxSleep   time.Duration
}

// Config is what the host tells a strategy about its configuration.
type Config struct {
	Strategy       string
	FibonacciLimit int64
	DataDir        string // io tasks write only here
	LargeFileName  string // io files are named after it plus a unique part
	TaskTimeout    time.Duration
	Semaphore      int64 // [other] asyn_semaphore
	Processes      int64 // [other] multiprocessing_processes
	Workers        int64 // [pool] workers; 0 means the number of CPUs
	QueueSize      int64 // [pool] queue_size
	Limits         Limits
	// Settings holds every key of the configuration file as "section.key",
	// so that a strategy can read a section of its own.
	Settings map[string]string
}

// Int reads the integer setting "section.key", or def when it is absent or
// not a whole number (the host has checked the keys it knows).
func (c Config) Int(key string, def int64) int64 {
	if v, err := strconv.ParseInt(c.Settings[key], 10, 64); err == nil {
		return v
	}
	return def
}

// Submitter is implemented by executors that can admit a task without
// waiting for it to finish. Tasks submitted one after another from one
// goroutine are admitted in that order, which calls to Execute, each from a
// goroutine of its own, cannot promise: it is what makes a pipelined
// connection's tasks queue in the order they arrived.
type Submitter interface {
	// Submit admits t and returns a function that waits for its outcome;
	// that function must be called exactly once.
	Submit(ctx context.Context, t Task) (wait func() (Result, error))
}

// Submit admits t on e in call order when e is a Submitter, and otherwise
// runs e.Execute in a goroutine of its own.
func Submit(ctx context.Context, e Executor, t Task) (wait func() (Result, error)) {
	if s, ok := e.(Submitter); ok {
		return s.Submit(ctx, t)
	}
	return Async(func() (Result, error) { return e.Execute(ctx, t) })
}

// Async runs fn in a goroutine and returns a function that waits for it.
func Async(fn func() (Result, error)) (wait func() (Result, error)) {
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	go func() {
		res, err := fn()
		ch <- outcome{res, err}
	}()
	return func() (Result, error) {
		o := <-ch
		return o.res, o.err
	}
}

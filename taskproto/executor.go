package taskproto

import (
	"context"
	"slices"
	"strconv"
	"time"
)

// Done receives a task's outcome. It is called exactly once per Submit.
type Done func(Result, error)

// Executor runs tasks. It is what a strategy implements, and what the host
// drives, whether the strategy runs in the host's process or in a plugin.
//
// Submit admits t, or refuses it, and returns without waiting for it to
// run: tasks submitted one after another are admitted in that order, which
// is what keeps a pipelined connection's tasks in arrival order. done is
// called exactly once with the outcome, from any goroutine, possibly before
// Submit returns; it must not block. When ctx is done before the task ends,
// the executor drops the task if it has not started, or stops it, and calls
// done promptly with an error that says so (ctx.Err(), or an *Error).
//
// Implementations must be safe for concurrent use.
type Executor interface {
	Submit(ctx context.Context, t Task, done Done)
	Info() StrategyInfo
	Stats(ctx context.Context) (Stats, error)
}

// Run submits t to e and waits for its outcome: for callers that have a
// goroutine to spare, such as tests and tools.
func Run(ctx context.Context, e Executor, t Task) (Result, error) {
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	e.Submit(ctx, t, func(res Result, err error) { ch <- outcome{res, err} })
	o := <-ch
	return o.res, o.err
}

// StrategyInfo describes a strategy.
type StrategyInfo struct {
	Name        string
	Description string
	// Concurrency is how many tasks the strategy runs at once; 0 when it
	// sets no bound of its own. The host hands a strategy no more than this
	// many tasks, plus a few to keep it busy, and queues the rest fairly.
	Concurrency int
	// BoundedKinds are the task kinds Concurrency bounds; empty: every
	// kind. A strategy that runs some kinds without taking one of its
	// slots (inproc sleeps on a timer and answers noop at once) lists the
	// others, and the host hands it the unlisted kinds as they come.
	BoundedKinds []string
	PID          int // process that executes or dispatches tasks
	// DirectWorkers says the strategy hands the data sockets of its worker
	// processes to the host (plugin.WorkerChannel), which sends them tasks
	// itself: a task then crosses one process boundary each way.
	DirectWorkers bool
}

// Bounds reports whether Concurrency bounds the tasks of kind.
func (i StrategyInfo) Bounds(kind string) bool {
	return i.Concurrency > 0 && (len(i.BoundedKinds) == 0 || slices.Contains(i.BoundedKinds, kind))
}

// WorkerStats describes one worker of a strategy that has workers.
type WorkerStats struct {
	ID       string `json:"id"`
	PID      int    `json:"pid"`
	State    string `json:"state"`
	Tasks    int64  `json:"tasks"`
	Restarts int64  `json:"restarts"`
	// Sandbox is the confinement the worker runs under, in one line;
	// empty when the strategy says none.
	Sandbox string `json:"sandbox,omitempty"`
}

// Stats is a strategy's view of its own work.
type Stats struct {
	Running   int64 `json:"running"`   // tasks running now
	Queued    int64 `json:"queued"`    // tasks accepted and waiting to run
	Completed int64 `json:"completed"` // tasks answered with a result
	Failed    int64 `json:"failed"`    // tasks answered with an error
	// Capacity is how many tasks it runs at once: its Concurrency, 0 when
	// it sets no bound.
	Capacity int64 `json:"capacity"`
	// Restarts counts the restarts of the strategy's own workers; the
	// host counts its plugin's restarts apart.
	Restarts int64         `json:"restarts"`
	Workers  []WorkerStats `json:"workers,omitempty"`
	// Metrics are the strategy's own metrics in Prometheus's text
	// exposition format, which the host adds to its /metrics.
	Metrics []byte `json:"-"`
}

// Limits bound task arguments. A task outside them is refused with
// out_of_range before it reaches a strategy.
type Limits struct {
	MaxFibN    int64
	MaxCPUN    int64
	MaxIOBytes int64
	MaxSleep   time.Duration
}

// Config is what the host tells a strategy about its configuration: the
// settings every strategy shares, and in Settings the keys of its own.
type Config struct {
	Strategy       string
	FibonacciLimit int64
	DataDir        string // io tasks write only here
	LargeFileName  string // io files are named after it plus a unique part
	TaskTimeout    time.Duration
	Limits         Limits
	// Settings holds every key of the configuration file as "section.key",
	// and every key the strategy declared, checked and set to its effective
	// value (see ApplyKeys).
	Settings map[string]string
}

// Int reads the integer setting "section.key"; 0 when it is absent, which
// for a declared key it is not.
func (c Config) Int(key string) int64 {
	v, _ := strconv.ParseInt(c.Settings[key], 10, 64)
	return v
}

// String reads the setting "section.key".
func (c Config) String(key string) string { return c.Settings[key] }

// Bool reads the boolean setting "section.key", as ApplyKeys wrote it.
func (c Config) Bool(key string) bool { return c.Settings[key] == "true" }

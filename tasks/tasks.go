// Package tasks holds the workloads every strategy runs: fib, cpu, io, sleep
// and noop. They are workloads, not answers: fib performs its big-integer
// additions, cpu loops over the integers, io writes a file and reads it back.
package tasks

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// Defaults for a task's argument when a request gives none (fib's default is
// the configured fibonacci_limit).
const (
	DefaultCPUN    = 1_000_000
	DefaultIOBytes = 1_000_000
	DefaultSleepMS = 1000
)

// DefaultN is a task's argument when a request gives none; fibN is
// [task_setting] fibonacci_limit.
func DefaultN(kind string, fibN int64) int64 {
	switch kind {
	case taskproto.KindFib:
		return fibN
	case taskproto.KindCPU:
		return DefaultCPUN
	case taskproto.KindIO:
		return DefaultIOBytes
	case taskproto.KindSleep:
		return DefaultSleepMS
	}
	return 0
}

// Default limits, the defaults of [limits] max_fib_n, max_cpu_n and
// max_io_bytes: each accepted task ends well within the default
// timeout_sec of 100 s on a slow core.
const (
	DefaultMaxFibN    = 100_000       // F(100000): about 0.1 s
	DefaultMaxCPUN    = 1_000_000_000 // about 0.5 s
	DefaultMaxIOBytes = 100_000_000   // 100 MB written and read back
	// MaxCPUN keeps the sum of 0..n-1 within an int64: no configuration
	// may allow more.
	MaxCPUN = 4_000_000_000
)

// SleepDone is a sleep's result, as the Python lab answered it.
const SleepDone = "Request done"

// checkEvery is how many loop iterations pass between looks at the context.
const checkEvery = 1 << 16

// Runner runs tasks; its zero value is not usable for io, which needs a
// directory.
type Runner struct {
	DataDir       string
	LargeFileName string
}

// Run runs t and returns its result as the protocol's reply text.
func (r Runner) Run(ctx context.Context, t taskproto.Task) (string, error) {
	switch t.Kind {
	case taskproto.KindFib:
		f, err := Fib(ctx, t.N)
		if err != nil {
			return "", err
		}
		return f.String(), nil
	case taskproto.KindCPU:
		s, err := CPU(ctx, t.N)
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(s, 10), nil
	case taskproto.KindIO:
		n, err := IO(ctx, r.DataDir, r.LargeFileName, t.N)
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(n, 10), nil
	case taskproto.KindSleep:
		if err := Sleep(ctx, time.Duration(t.N)*time.Millisecond); err != nil {
			return "", err
		}
		return SleepDone, nil
	case taskproto.KindNoop:
		return "", nil
	}
	return "", unknown(t.Kind)
}

func unknown(kind string) *taskproto.Error {
	return taskproto.Errorf(taskproto.CodeUnknownTask, "unknown task %q; accepted: %s", kind, strings.Join(taskproto.Kinds, ", "))
}

// Check refuses a task whose kind is unknown or whose argument is outside
// lim, before it costs anything.
func Check(t taskproto.Task, lim taskproto.Limits) error {
	var hi int64
	switch t.Kind {
	case taskproto.KindFib:
		hi = lim.MaxFibN
	case taskproto.KindCPU:
		hi = lim.MaxCPUN
	case taskproto.KindIO:
		hi = lim.MaxIOBytes
	case taskproto.KindSleep:
		hi = lim.MaxSleep.Milliseconds()
	case taskproto.KindNoop:
		return nil
	default:
		return unknown(t.Kind)
	}
	if t.N < 0 || t.N > hi {
		return taskproto.Errorf(taskproto.CodeOutOfRange, "%s n must be between 0 and %d, got %d", t.Kind, hi, t.N)
	}
	return nil
}

// Fib returns F(n), F(0)=0, F(1)=1, by n big-integer additions.
func Fib(ctx context.Context, n int64) (*big.Int, error) {
	if n < 0 {
		return nil, fmt.Errorf("fib of negative index %d", n)
	}
	a, b := new(big.Int), big.NewInt(1)
	for i := int64(0); i < n; i++ {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		a.Add(a, b)
		a, b = b, a
	}
	return a, nil
}

// CPU sums the integers 0..n-1 by a loop: it is the CPU-bound workload.
func CPU(ctx context.Context, n int64) (int64, error) {
	if n < 0 || n > MaxCPUN {
		return 0, fmt.Errorf("cpu n %d outside 0..%d", n, int64(MaxCPUN))
	}
	var sum int64
	for i := int64(0); i < n; {
		end := min(i+checkEvery, n)
		for ; i < end; i++ {
			sum += i
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	return sum, nil
}

// Sleep waits d or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CPUKinds are the kinds that keep a core busy while they run (fib, cpu,
// and io, which copies and compares what it writes), as opposed to waiting
// (sleep) or doing nothing (noop).
var CPUKinds = []string{taskproto.KindFib, taskproto.KindCPU, taskproto.KindIO}

// UsesCPU reports whether kind is among CPUKinds.
func UsesCPU(kind string) bool { return slices.Contains(CPUKinds, kind) }

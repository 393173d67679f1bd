package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wslab/wslab/taskproto"
)

// Instance is one instantiated guest, with its own memory. It runs one
// task at a time: a caller (the executor's slot) owns it. Once a call has
// not returned normally (a trap, the guest's runtime gave up, its
// context ended it) the guest's state is unknown and the instance is
// Broken: close it and make another.
type Instance struct {
	module             *Module
	mod                api.Module
	mem                api.Memory
	input, run, output api.Function
	stack              [2]uint64
	broken             bool
	stderr             stderrBuffer
	// sleepDone is the Done of the call in progress. nanosleep reads it in
	// the goroutine that made the call (wazero runs host functions in the
	// caller's goroutine), so it needs no lock.
	sleepDone <-chan struct{}
}

// Run runs t in the guest and returns its result, as tasks.Runner would.
// A task the guest failed is its error (with the code the guest gave); a
// task whose context ended is ctx.Err(); a trap is executor_failed saying
// what trapped, and leaves the instance Broken.
func (in *Instance) Run(ctx context.Context, t taskproto.Task) (string, error) {
	if in.broken {
		return "", taskproto.Errorf(taskproto.CodeExecutorFailed, "wasm instance is broken")
	}
	if len(t.Kind) > MaxKindLen {
		return "", taskproto.Errorf(taskproto.CodeUnknownTask, "unknown task %q", t.Kind[:MaxKindLen]+"…")
	}
	in.begin(ctx)
	defer in.end(ctx)
	ptr, err := in.call(ctx, in.input, uint64(len(t.Kind)))
	if err != nil {
		return "", in.failed(ctx, t, err)
	}
	if !in.mem.WriteString(uint32(ptr), t.Kind) {
		return "", in.failed(ctx, t, fmt.Errorf("kind buffer at %#x is outside the guest's memory", uint32(ptr)))
	}
	res, err := in.call(ctx, in.run, uint64(t.N))
	if err != nil {
		return "", in.failed(ctx, t, err)
	}
	r := int32(res)
	size := r
	if r < 0 {
		size = -r - 1
	}
	ptr, err = in.call(ctx, in.output)
	if err != nil {
		return "", in.failed(ctx, t, err)
	}
	b, ok := in.mem.Read(uint32(ptr), uint32(size))
	if !ok {
		return "", in.failed(ctx, t, fmt.Errorf("outcome of %d bytes at %#x is outside the guest's memory", size, uint32(ptr)))
	}
	if r >= 0 {
		return string(b), nil // a copy: b is the guest's memory
	}
	if ctx.Err() != nil { // the guest saw its context end (hostContext)
		return "", in.stopped(ctx, t, false)
	}
	code, msg, _ := strings.Cut(string(b), "\n")
	if code == "" {
		return "", errors.New(msg)
	}
	return "", &taskproto.Error{Code: taskproto.Code(code), Message: msg}
}

// begin readies the instance for the calls of one task under ctx.
func (in *Instance) begin(ctx context.Context) {
	in.stderr.Reset()
	in.sleepDone = ctx.Done()
}

// end follows the calls of one task. With close_on_context_done wazero
// ends an instance whose call's context ended during the call, from a
// goroutine of its own that may do so just after the call returned: an
// instance whose task outlived its context is not used again.
func (in *Instance) end(ctx context.Context) {
	in.sleepDone = nil
	if in.module.opt.CloseOnContextDone && ctx.Err() != nil {
		in.broken = true
	}
}

// failed marks the instance broken after a call that did not return, and
// says why.
func (in *Instance) failed(ctx context.Context, t taskproto.Task, err error) error {
	in.broken = true
	if ctx.Err() != nil {
		var exit *sys.ExitError
		if errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeContextCanceled || exit.ExitCode() == sys.ExitCodeDeadlineExceeded) {
			return in.stopped(ctx, t, true)
		}
	}
	what := in.stderr.fatal()
	if what == "" {
		what, _, _ = strings.Cut(err.Error(), "\n") // "wasm error: unreachable"
	}
	used := in.mem.Size()
	if strings.Contains(what, "out of memory") || uint64(used)+pageSize > in.module.maxBytes {
		return taskproto.Errorf(taskproto.CodeResourceExhausted,
			"wasm %s task (n=%d) ran out of memory: %s; its instance reached its cap of %d MiB ([wasm] max_memory_mb) and is replaced",
			t.Kind, t.N, what, in.module.maxBytes/BytesPerMB)
	}
	return taskproto.Errorf(taskproto.CodeExecutorFailed, "wasm %s task (n=%d) trapped: %s; its instance is replaced", t.Kind, t.N, what)
}

// stopped is the error of a task its context's end stopped: past its
// deadline, timeout saying so, which also is (errors.Is) the context's
// error; else the context's error, whose cause says why (the host's
// cancel). ended: the instance was ended under the task.
func (in *Instance) stopped(ctx context.Context, t taskproto.Task, ended bool) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err()
	}
	how := "it stopped at its next look at its context"
	if ended {
		how = "its instance was ended where it ran, and is replaced"
		if in.module.opt.CloseOnContextDone {
			how = "wazero ended its instance where it ran (close_on_context_done), and the instance is replaced"
		}
	}
	te := taskproto.Errorf(taskproto.CodeTimeout, "wasm %s task (n=%d) ran past its deadline, which stopped it: %s", t.Kind, t.N, how)
	return fmt.Errorf("%w (%w)", te, ctx.Err())
}

// Broken reports whether the instance must be replaced.
func (in *Instance) Broken() bool { return in.broken }

// MemoryBytes is the size of the instance's memory now.
func (in *Instance) MemoryBytes() uint64 { return uint64(in.mem.Size()) }

// Close frees the instance.
func (in *Instance) Close(ctx context.Context) error { return in.mod.Close(ctx) }

// nanosleep is the guest's sleep (WASI poll_oneoff, where a sleep task
// and the guest's idle scheduler wait). When the context of the call in
// progress ends first it ends the instance, as WASI's proc_exit does: a
// guest goroutine cannot be woken from the host, so the sleep could not
// end otherwise. wazero turns the panic into the call's error.
func (in *Instance) nanosleep(ns int64) {
	done := in.sleepDone
	if done == nil { // _initialize, or a call without a context that ends
		time.Sleep(time.Duration(ns))
		return
	}
	timer := time.NewTimer(time.Duration(ns))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-done:
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}

// stderrBuffer keeps the start of what the guest wrote to stderr during
// one call (a Go panic or fatal error: its first lines say what), up to
// maxStderr bytes. wazero writes it in the goroutine that made the call,
// the one that owns the instance: it needs no lock.
type stderrBuffer struct{ buf bytes.Buffer }

const maxStderr = 8 << 10

func (b *stderrBuffer) Write(p []byte) (int, error) {
	if room := maxStderr - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *stderrBuffer) Reset() { b.buf.Reset() }

// fatal is the line that says why the guest's runtime gave up: "fatal
// error: out of memory", "panic: …"; "" when it wrote none.
func (b *stderrBuffer) fatal() string {
	var first string
	for line := range strings.Lines(b.buf.String()) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "fatal error:"), strings.HasPrefix(line, "panic:"):
			return line
		case first == "" && line != "":
			first = line
		}
	}
	return first
}

// note is the guest's stderr for an error message, "" when empty.
func (b *stderrBuffer) note() string {
	if s := b.fatal(); s != "" {
		return " (guest: " + s + ")"
	}
	return ""
}

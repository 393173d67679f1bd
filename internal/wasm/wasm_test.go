package wasm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// testModule is the guest built with the tests' exports (-tags wasmtest),
// once for the package; testCache keeps its compiled code, so that each
// test's Load does not compile it again.
var testModule, testCache string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wslab-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testModule, testCache = filepath.Join(dir, ModuleFile), filepath.Join(dir, "cache")
	if err := BuildGuest(context.Background(), "../..", testModule, "wasmtest"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// hangGuard bounds every wait: it turns a hang into a failure, and is no
// timing assertion.
const hangGuard = 10 * time.Second

func options(t testing.TB) Options {
	return Options{Path: testModule, MaxMemoryMB: 64, DataDir: t.TempDir(), LargeFileName: "large_file.txt", CacheDir: testCache}
}

func load(t testing.TB, opt Options) *Module {
	t.Helper()
	m, err := Load(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func instance(t testing.TB, m *Module) *Instance {
	t.Helper()
	in, err := m.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// Every kind gives what package tasks computes natively, its errors too,
// and io leaves nothing in the data directory.
func TestResultsAreTheTasks(t *testing.T) {
	opt := options(t)
	in := instance(t, load(t, opt))
	native := tasks.Runner{DataDir: t.TempDir(), LargeFileName: opt.LargeFileName}
	ctx := context.Background()
	for _, task := range []taskproto.Task{
		{Kind: "fib", N: 0}, {Kind: "fib", N: 1}, {Kind: "fib", N: 93}, {Kind: "fib", N: 10_000},
		{Kind: "cpu", N: 0}, {Kind: "cpu", N: 1}, {Kind: "cpu", N: 1_000_003},
		{Kind: "io", N: 0}, {Kind: "io", N: 1}, {Kind: "io", N: 65_537}, {Kind: "io", N: 1_000_000},
		{Kind: "sleep", N: 0}, {Kind: "sleep", N: 15},
		{Kind: "noop", N: 0}, {Kind: "noop", N: 7},
		{Kind: "fib", N: -1}, {Kind: "cpu", N: tasks.MaxCPUN + 1}, {Kind: "io", N: -1},
		{Kind: "nope", N: 1}, {Kind: strings.Repeat("k", MaxKindLen+1), N: 1},
	} {
		want, wantErr := native.Run(ctx, task)
		got, err := in.Run(ctx, task)
		name := fmt.Sprintf("%.10s(%d)", task.Kind, task.N)
		switch {
		case wantErr != nil && err == nil:
			t.Errorf("%s = %.40q, want the error %v", name, got, wantErr)
		case wantErr != nil && taskproto.AsError(nil, err).Code != taskproto.AsError(nil, wantErr).Code:
			t.Errorf("%s failed with %v, natively with %v", name, err, wantErr)
		case wantErr == nil && err != nil:
			t.Errorf("%s: %v", name, err)
		case got != want:
			t.Errorf("%s = %.40q, want %.40q", name, got, want)
		}
		if in.Broken() {
			t.Fatalf("%s broke the instance", name)
		}
	}
	if left, _ := os.ReadDir(opt.DataDir); len(left) > 0 {
		t.Errorf("io left %d files in the data directory: %v", len(left), left[0].Name())
	}
}

// A task whose context ends stops: cpu, fib and io through their own
// checks of the context (the instance stays), a sleep by ending its
// instance (Broken). A deadline ends it the same way.
func TestCancelStops(t *testing.T) {
	m := load(t, options(t))
	for _, c := range []struct {
		task   taskproto.Task
		broken bool
	}{
		{taskproto.Task{Kind: "cpu", N: tasks.MaxCPUN}, false},
		{taskproto.Task{Kind: "fib", N: 10_000_000}, false},
		{taskproto.Task{Kind: "io", N: 1 << 30}, false},
		{taskproto.Task{Kind: "sleep", N: 60_000}, true},
	} {
		for _, deadline := range []bool{false, true} {
			in := instance(t, m)
			ctx, cancel := context.WithCancel(context.Background())
			want := context.Canceled
			if deadline {
				ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
				want = context.DeadlineExceeded
			} else {
				time.AfterFunc(100*time.Millisecond, cancel)
			}
			start := time.Now()
			_, err := in.Run(ctx, c.task)
			took := time.Since(start)
			cancel()
			if !errors.Is(err, want) {
				t.Errorf("%s %d: %v, want %v", c.task.Kind, c.task.N, err, want)
			}
			if took > 2*time.Second {
				t.Errorf("%s %d stopped %v after its context ended", c.task.Kind, c.task.N, took)
			}
			if in.Broken() != c.broken {
				t.Errorf("%s %d: broken = %v, want %v", c.task.Kind, c.task.N, in.Broken(), c.broken)
			}
			if !in.Broken() {
				if v, err := in.Run(context.Background(), taskproto.Task{Kind: "cpu", N: 10}); err != nil || v != "45" {
					t.Errorf("after a cancelled %s: cpu 10 = %q, %v", c.task.Kind, v, err)
				}
			}
			in.Close(context.Background())
		}
	}
}

// With wazero's termination checks compiled in (the default), a deadline
// stops the guest wherever it is, even in a loop that never looks at its
// context (the spin attack), with timeout saying so; a cancel stops it
// as well. The instance is not used again.
func TestCloseOnContextDone(t *testing.T) {
	opt := options(t)
	opt.CloseOnContextDone = true
	m := load(t, opt)
	if v, err := instance(t, m).Run(context.Background(), taskproto.Task{Kind: "fib", N: 10}); err != nil || v != "55" {
		t.Fatalf("fib 10 = %q, %v", v, err)
	}
	for _, task := range []taskproto.Task{
		{Kind: "fib", N: attacks.Spin}, {Kind: "sleep", N: 60_000}, {Kind: "cpu", N: tasks.MaxCPUN},
	} {
		for _, deadline := range []bool{true, false} {
			in := instance(t, m)
			ctx, cancel := context.WithCancel(context.Background())
			if deadline {
				ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
			} else {
				time.AfterFunc(200*time.Millisecond, cancel)
			}
			start := time.Now()
			v, err := in.Run(ctx, task)
			took := time.Since(start)
			cancel()
			var te *taskproto.Error
			switch {
			case deadline && (!errors.As(err, &te) || te.Code != taskproto.CodeTimeout || !strings.Contains(te.Message, "deadline, which stopped it")):
				t.Errorf("%s %d past its deadline: %q, %v; want timeout saying the deadline stopped it", task.Kind, task.N, v, err)
			case deadline && !errors.Is(err, context.DeadlineExceeded):
				t.Errorf("%s %d past its deadline: %v is not DeadlineExceeded", task.Kind, task.N, err)
			case !deadline && !errors.Is(err, context.Canceled):
				t.Errorf("%s %d cancelled: %q, %v; want context.Canceled", task.Kind, task.N, v, err)
			}
			if took > hangGuard/2 {
				t.Errorf("%s %d stopped %v after it started, its context ended after 200ms", task.Kind, task.N, took)
			}
			if !in.Broken() {
				t.Errorf("%s %d: the instance its context's end stopped is not Broken", task.Kind, task.N)
			}
			t.Logf("%s %d (deadline %v) stopped after %v: %v", task.Kind, task.N, deadline, took.Round(time.Millisecond), err)
			in.Close(context.Background())
		}
	}
}

// The attacks of internal/attacks, run inside the guest, are refused by
// what WASI lacks (sandbox_denied naming it) or by the memory cap
// (resource_exhausted); the file outside is unchanged and the listener
// sees no connection.
func TestAttacks(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside.txt")
	if err := os.WriteFile(outside, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	defer ln.Close()
	opt := options(t)
	opt.MaxMemoryMB = 32
	opt.CloseOnContextDone = true
	opt.GuestEnv = []string{attacks.Env + "=" + outside + "," + ln.Addr().String()}
	m := load(t, opt)
	for n, want := range map[int64]taskproto.Code{
		attacks.ReadPasswd: taskproto.CodeSandboxDenied, attacks.ReadOutside: taskproto.CodeSandboxDenied,
		attacks.WriteOutside: taskproto.CodeSandboxDenied, attacks.Connect: taskproto.CodeSandboxDenied,
		attacks.Fork: taskproto.CodeSandboxDenied, attacks.Allocate: taskproto.CodeResourceExhausted,
	} {
		in := instance(t, m)
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		v, err := in.Run(ctx, taskproto.Task{Kind: "fib", N: n})
		cancel()
		var te *taskproto.Error
		if !errors.As(err, &te) || te.Code != want || !strings.Contains(te.Message, map[bool]string{true: "max_memory_mb", false: "wasm sandbox"}[n == attacks.Allocate]) {
			t.Errorf("%s: %q, %v; want %s naming what refused it", attacks.Names[n], v, err, want)
		}
		if broken := n == attacks.Allocate; in.Broken() != broken {
			t.Errorf("%s: instance broken %v, want %v", attacks.Names[n], in.Broken(), broken)
		}
		t.Logf("%s: %v", attacks.Names[n], err)
		in.Close(context.Background())
	}
	if b, _ := os.ReadFile(outside); string(b) != "original" {
		t.Errorf("the file outside the data directory now holds %q", b)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the listener accepted %d connections from the guest", n)
	}
}

// callTest calls one of the tests' exports as Run calls the ABI's.
func callTest(ctx context.Context, in *Instance, name string, arg string, params ...uint64) (uint64, error) {
	in.begin(ctx)
	defer in.end(ctx)
	task := taskproto.Task{Kind: name}
	if arg != "" {
		ptr, err := in.call(ctx, in.input, uint64(len(arg)))
		if err != nil {
			return 0, in.failed(ctx, task, err)
		}
		in.mem.WriteString(uint32(ptr), arg)
	}
	v, err := in.call(ctx, in.mod.ExportedFunction(name), params...)
	if err != nil {
		return 0, in.failed(ctx, task, err)
	}
	return v, nil
}

// An instance that needs more than max_memory_mb traps, and the error says
// that the cap was reached; a new instance works.
func TestMemoryCap(t *testing.T) {
	opt := options(t)
	opt.MaxMemoryMB = 16
	m := load(t, opt)
	in := instance(t, m)
	if _, err := callTest(context.Background(), in, "wslab_test_alloc_mb", "", 4); err != nil {
		t.Fatalf("4 MiB under a 16 MiB cap: %v", err)
	}
	_, err := callTest(context.Background(), in, "wslab_test_alloc_mb", "", 32)
	var te *taskproto.Error
	if !errors.As(err, &te) || te.Code != taskproto.CodeResourceExhausted ||
		!strings.Contains(te.Message, "out of memory") || !strings.Contains(te.Message, "16 MiB") {
		t.Fatalf("32 MiB more under a 16 MiB cap: %v; want resource_exhausted saying out of memory at 16 MiB", err)
	}
	t.Logf("past the cap: %v", err)
	if !in.Broken() || in.MemoryBytes() > 16*BytesPerMB {
		t.Errorf("broken %v, memory %d bytes", in.Broken(), in.MemoryBytes())
	}
	in.Close(context.Background())
	if v, err := instance(t, m).Run(context.Background(), taskproto.Task{Kind: "fib", N: 1000}); err != nil || len(v) != 209 {
		t.Errorf("a new instance after the trap: fib 1000 = %.20q, %v", v, err)
	}
}

// A guest that panics is executor_failed saying what the guest's runtime
// said, its instance broken; a new one works.
func TestTrap(t *testing.T) {
	m := load(t, options(t))
	in := instance(t, m)
	_, err := callTest(context.Background(), in, "wslab_test_panic", "")
	var te *taskproto.Error
	if !errors.As(err, &te) || te.Code != taskproto.CodeExecutorFailed || !strings.Contains(te.Message, "assignment to entry in nil map") ||
		!strings.Contains(te.Message, "replaced") {
		t.Errorf("a panicking guest: %v; want executor_failed with the panic's message", err)
	}
	if !in.Broken() {
		t.Errorf("the instance that panicked is not Broken")
	}
	if v, err := in.Run(context.Background(), taskproto.Task{Kind: "noop"}); err == nil {
		t.Errorf("a broken instance ran noop: %q", v)
	}
	in.Close(context.Background())
	if v, err := instance(t, m).Run(context.Background(), taskproto.Task{Kind: "fib", N: 10}); err != nil || v != "55" {
		t.Errorf("a new instance after the panic: fib 10 = %q, %v", v, err)
	}
	t.Logf("panic: %v", err)
}

// The guest sees the data directory alone: files outside it cannot be
// made.
func TestOnlyTheDataDir(t *testing.T) {
	opt := options(t)
	outside := t.TempDir()
	in := instance(t, load(t, opt))
	for _, p := range []string{GuestDataDir + "/../escape", "/escape", "../escape", outside + "/escape", "/tmp/escape"} {
		v, err := callTest(context.Background(), in, "wslab_test_create", p)
		if err != nil || v != 1 {
			t.Errorf("create %s: %d, %v; want it refused", p, v, err)
		}
	}
	if left, _ := os.ReadDir(outside); len(left) > 0 {
		t.Errorf("the guest wrote %s outside the data directory", left[0].Name())
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(opt.DataDir), "escape")); err == nil {
		t.Errorf("the guest wrote beside the data directory")
	}
	if v, err := callTest(context.Background(), in, "wslab_test_create", GuestDataDir+"/inside"); err != nil || v != 0 {
		t.Errorf("create inside the data directory: %d, %v", v, err)
	}
	if _, err := os.Stat(filepath.Join(opt.DataDir, "inside")); err != nil {
		t.Errorf("the file made inside is not in the data directory: %v", err)
	}
}

// A missing module fails with its path and how to build it.
func TestMissingModule(t *testing.T) {
	opt := options(t)
	opt.Path = filepath.Join(t.TempDir(), "none.wasm")
	_, err := Load(context.Background(), opt)
	if err == nil || !strings.Contains(err.Error(), opt.Path) || !strings.Contains(err.Error(), "make build") {
		t.Errorf("Load of a missing module: %v; want the path and `make build`", err)
	}
}

// A module that is not the guest is refused, naming what it lacks.
func TestNotTheGuest(t *testing.T) {
	opt := options(t)
	opt.Path = filepath.Join(t.TempDir(), "empty.wasm")
	// The smallest module: magic and version, nothing exported.
	if err := os.WriteFile(opt.Path, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), opt); err == nil || !strings.Contains(err.Error(), ExportABI) {
		t.Errorf("Load of an empty module: %v; want it to name %s", err, ExportABI)
	}
}

// The compilation cache is this user's alone, and keeps a bounded number
// of builds.
func TestCompilationCache(t *testing.T) {
	root := filepath.Join(t.TempDir(), "cache")
	opt := options(t)
	opt.CacheDir = root
	load(t, opt)
	fi, err := os.Stat(root)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	for i := range maxCachedModules + 2 {
		if _, err := OpenCache(root, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) > maxCachedModules {
		t.Errorf("%d module directories kept, at most %d", len(entries), maxCachedModules)
	}
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if _, err := OpenCache(open, []byte{1}); err == nil {
		t.Errorf("a cache directory others may write to was used")
	}
}

// BenchmarkTask runs a task kind on one instance, with and without
// wazero's termination checks (close_on_context_done), beside the same
// task run natively: what the sandbox and the checks cost.
func BenchmarkTask(b *testing.B) {
	ctx := context.Background()
	for _, task := range []taskproto.Task{{Kind: "noop"}, {Kind: "cpu", N: 1_000_000}, {Kind: "fib", N: 5000}, {Kind: "io", N: 1_000_000}} {
		b.Run(task.Kind+"/native", func(b *testing.B) {
			r := tasks.Runner{DataDir: b.TempDir(), LargeFileName: "large_file.txt"}
			for b.Loop() {
				if _, err := r.Run(ctx, task); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, checks := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/close_on_context_done=%v", task.Kind, checks), func(b *testing.B) {
				opt := options(b)
				opt.CloseOnContextDone = checks
				in := instance(b, load(b, opt))
				for b.Loop() {
					if _, err := in.Run(ctx, task); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// submit runs t on e and waits for its answer.
func submit(ctx context.Context, t *testing.T, e *Executor, task taskproto.Task) (taskproto.Result, error) {
	t.Helper()
	type answer struct {
		res taskproto.Result
		err error
	}
	ch := make(chan answer, 1)
	e.Submit(ctx, task, func(res taskproto.Result, err error) { ch <- answer{res, err} })
	select {
	case a := <-ch:
		return a.res, a.err
	case <-time.After(hangGuard):
		t.Fatalf("%s %d: no answer in %v", task.Kind, task.N, hangGuard)
		return taskproto.Result{}, nil
	}
}

// The executor's instances run tasks side by side; a task that spins past
// its deadline is answered timeout at it, its instance replaced (a
// restart of its slot), and the instances go on with what comes next; a
// full queue answers overloaded.
func TestExecutor(t *testing.T) {
	opt := options(t)
	opt.CloseOnContextDone = true
	e, err := NewWith(context.Background(), opt, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	spin := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := submit(ctx, t, e, taskproto.Task{Kind: "fib", N: attacks.Spin})
		spin <- err
	}()
	for i := range 20 { // on the other instance meanwhile
		if res, err := submit(context.Background(), t, e, taskproto.Task{Kind: "cpu", N: int64(i)}); err != nil || res.Value != fmt.Sprint(i*(i-1)/2) {
			t.Fatalf("cpu %d beside the spin: %+v, %v", i, res, err)
		}
	}
	if err := <-spin; taskproto.AsError(nil, err).Code != taskproto.CodeTimeout {
		t.Errorf("spin past its deadline: %v, want timeout", err)
	}
	// Its slot is replaced once the spin is answered.
	st := idle(t, e)
	if st.Restarts != 1 {
		t.Errorf("%d restarts after one spin stopped, want 1: %+v", st.Restarts, st.Workers)
	}
	seen := map[string]bool{}
	for i := range 8 {
		res, err := submit(context.Background(), t, e, taskproto.Task{Kind: "fib", N: 90})
		if err != nil || res.Value != "2880067194370816120" {
			t.Fatalf("fib 90 #%d after the spin: %+v, %v", i, res, err)
		}
		seen[res.Worker] = true
	}
	t.Logf("instances used: %v; stats %+v", seen, st)

	// Two sleeps take both instances, one waits, the next is refused.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answers := make(chan error, 3)
	for range 3 {
		e.Submit(ctx, taskproto.Task{Kind: "sleep", N: 60_000}, func(_ taskproto.Result, err error) { answers <- err })
	}
	if _, err := submit(context.Background(), t, e, taskproto.Task{Kind: "noop"}); taskproto.AsError(nil, err).Code != taskproto.CodeOverloaded {
		t.Errorf("a task beyond the queue: %v, want overloaded", err)
	}
	cancel()
	for range 3 {
		if err := <-answers; !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled sleep: %v", err)
		}
	}
}

// idle waits until every instance of e is idle, and gives e's stats then.
func idle(t *testing.T, e *Executor) taskproto.Stats {
	t.Helper()
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		st, _ := e.Stats(context.Background())
		busy := 0
		for _, w := range st.Workers {
			if w.State != "idle" {
				busy++
			}
		}
		if busy == 0 {
			return st
		}
		if time.Since(start) > hangGuard {
			t.Fatalf("instances not idle after %v: %+v", hangGuard, st.Workers)
		}
	}
}

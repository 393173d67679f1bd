package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// testModule is the guest built with the tests' exports (-tags wasmtest),
// once for the package.
var testModule string

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
	testModule = filepath.Join(dir, ModuleFile)
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
	return Options{Path: testModule, MaxMemoryMB: 64, DataDir: t.TempDir(), LargeFileName: "large_file.txt"}
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

// With wazero's termination checks compiled in, a cancel stops the guest
// wherever it is, and the instance is replaced.
func TestCloseOnContextDone(t *testing.T) {
	opt := options(t)
	opt.CloseOnContextDone = true
	in := instance(t, load(t, opt))
	if v, err := in.Run(context.Background(), taskproto.Task{Kind: "fib", N: 10}); err != nil || v != "55" {
		t.Fatalf("fib 10 = %q, %v", v, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := in.Run(ctx, taskproto.Task{Kind: "sleep", N: 60_000}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("sleep past its deadline: %v", err)
	}
}

// callTest calls one of the tests' exports as Run calls the ABI's.
func callTest(ctx context.Context, in *Instance, name string, arg string, params ...uint64) (uint64, error) {
	in.stderr.Reset()
	in.sleepDone = ctx.Done()
	defer func() { in.sleepDone = nil }()
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
	if !errors.As(err, &te) || te.Code != taskproto.CodeExecutorFailed ||
		!strings.Contains(te.Message, "out of memory") || !strings.Contains(te.Message, "16 MiB") {
		t.Fatalf("32 MiB more under a 16 MiB cap: %v; want executor_failed saying out of memory at 16 MiB", err)
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

// Package conformance checks a strategy plugin against the host-plugin
// contract, starting it the way the host does (taskproto/launch.Launch):
// the keys it declares, the exact result of every task kind, the bounds,
// deadlines and cancels it must honour, the concurrency it declares, its
// statistics, exactly one reply per task even when it is killed, and no
// process left behind. A Go plugin's tests call Run with the plugin's
// binary; a plugin in another language is checked with
// `bin/host --conformance NAME`, which calls Check.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/pythonplugins"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/wire"
)

// Options say how the kit runs the plugin.
type Options struct {
	// Settings set keys the plugin declares ("section.key" → value), for
	// instance fewer worker processes; the others take their defaults.
	Settings map[string]string
	// Resolve, when set, gives the settings instead of Settings and the
	// declared defaults: the host passes its configuration file's
	// resolution (config.Config.StrategySettings), so the kit checks the
	// values the host would send.
	Resolve func([]taskproto.Key) (map[string]string, error)
	// Checksum and Verify, when set, check the plugin before each start,
	// as launch.LaunchOptions says.
	Checksum []byte
	Verify   func() error
	// Logger receives the plugin's logs; nil discards them.
	Logger hclog.Logger
}

// Result is the outcome of one check.
type Result struct {
	Check string
	Err   error // nil: passed
	Took  time.Duration
}

// The limits the kit configures the plugin with: small enough that a task
// past them is cheap to send, large enough for every case it checks.
var limits = taskproto.Limits{MaxFibN: 10_000, MaxCPUN: 100_000_000, MaxIOBytes: 1 << 20, MaxSleep: 30 * time.Second}

// errSkipped marks a check that could not run because an earlier one failed.
var errSkipped = errors.New("skipped: an earlier check it needs failed")

// Skipped reports whether err is that of a check that did not run.
func Skipped(err error) bool { return errors.Is(err, errSkipped) }

// Check runs every check against the plugin binary at path, in order, and
// returns one Result per check. It starts the plugin twice and leaves
// nothing running.
func Check(ctx context.Context, path string, opt Options) []Result {
	k := &kit{path: path, name: filepath.Base(path), opt: opt}
	if k.opt.Logger == nil {
		k.opt.Logger = hclog.NewNullLogger()
	}
	dir, err := os.MkdirTemp("", "wslab-conformance-")
	if err != nil {
		return []Result{{Check: "setup", Err: err}}
	}
	defer os.RemoveAll(dir)
	k.dir = dir
	defer k.stop()

	var results []Result
	failed := false
	for _, c := range checks {
		start := time.Now()
		err := errSkipped
		if !failed || !c.needsPrevious {
			err = c.run(ctx, k)
		}
		if err != nil && c.needsPrevious {
			failed = true
		}
		results = append(results, Result{Check: c.name, Err: err, Took: time.Since(start)})
	}
	return results
}

// TB is the part of *testing.T that Run and RunGo use.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
}

// SkippingTB is TB with Skip.
type SkippingTB interface {
	TB
	Skip(args ...any)
}

// RunPython is a Python plugin's conformance test: Run on the executable
// at path (in the source tree, beside the test), skipped, saying why,
// where the Python plugins cannot run.
func RunPython(t SkippingTB, path string, opt Options) {
	t.Helper()
	if why := pythonplugins.Missing(); why != "" {
		t.Skip(why)
	}
	Run(t, path, opt)
}

// Run runs Check in a test, reporting each failed check as an error.
func Run(t TB, path string, opt Options) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, r := range Check(ctx, path, opt) {
		switch {
		case Skipped(r.Err):
			t.Logf("conformance: %s: %v", r.Check, r.Err)
		case r.Err != nil:
			t.Errorf("conformance: %s: %v", r.Check, r.Err)
		default:
			t.Logf("conformance: %s: ok (%v)", r.Check, r.Took.Round(time.Millisecond))
		}
	}
}

// RunGo builds the Go plugin in the package directory pkg and runs Run on
// it: a Go plugin's whole conformance test.
func RunGo(t TB, pkg string, opt Options) {
	t.Helper()
	bin, err := BuildGo(pkg, t.TempDir())
	if err != nil {
		t.Fatalf("%v", err)
	}
	Run(t, bin, opt)
}

// BuildGo builds the Go plugin in the package directory pkg into dir and
// returns the binary's path, for a plugin's test to hand to Run.
func BuildGo(pkg, dir string) (string, error) {
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(abs))
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = abs
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// kit is one run of the checks: the plugin process they share, and what
// they learnt of it.
type kit struct {
	path, name, dir string
	opt             Options

	proc      *launch.Process
	desc      wire.Description
	cfg       taskproto.Config
	info      taskproto.StrategyInfo
	w         *dataChannel
	succeeded int64 // tasks answered with a result so far
}

// launch starts a fresh plugin process, stopping the one before, if any.
func (k *kit) launch(ctx context.Context) (*launch.Process, error) {
	k.stop()
	proc, err := launch.Launch(ctx, launch.LaunchOptions{Name: k.name, Path: k.path, Logger: k.opt.Logger, Checksum: k.opt.Checksum, Verify: k.opt.Verify})
	k.proc = proc
	return proc, err
}

func (k *kit) stop() {
	if k.proc != nil {
		k.proc.Kill()
		k.proc = nil
	}
}

// config is what the host would send, with the kit's settings over the
// declared defaults.
func (k *kit) config() (taskproto.Config, error) {
	resolve := k.opt.Resolve
	if resolve == nil {
		resolve = func(keys []taskproto.Key) (map[string]string, error) {
			return taskproto.ApplyKeys(k.opt.Settings, keys)
		}
	}
	settings, err := resolve(k.desc.Keys)
	if err != nil {
		return taskproto.Config{}, fmt.Errorf("the kit's own settings: %w", err)
	}
	return taskproto.Config{
		Strategy:       k.name,
		FibonacciLimit: 5000,
		DataDir:        filepath.Join(k.dir, "data"),
		LargeFileName:  "large_file.txt",
		TaskTimeout:    limits.MaxSleep,
		Limits:         limits,
		Settings:       settings,
	}, os.MkdirAll(filepath.Join(k.dir, "data"), 0o700)
}

// waitIdle waits until the plugin says it runs and queues nothing.
func (k *kit) waitIdle(ctx context.Context, limit time.Duration) (taskproto.Stats, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := k.proc.Stats(ctx)
		if err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		if st.Running == 0 && st.Queued == 0 {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("still %d tasks running and %d queued %v after their replies: the work goes on", st.Running, st.Queued, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

//go:build unix

package multiproc

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/faults"
	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/taskproto"
)

// TestMain turns the test binary into a worker when the Executor under test
// re-executes it as `<test binary> worker --id ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == WorkerArg {
		os.Exit(WorkerMain(os.Args[2:], faults.FromEnv))
	}
	os.Exit(m.Run())
}

// Bounds of the hang guards: generous, as workers run under the race
// detector on a small machine.
const (
	prompt  = 3 * time.Second  // an answer that needs no long task
	hangMax = 15 * time.Second // anything at all
)

// testLogger logs into a buffer that is shown when the test fails; a data
// race reported by a worker (race-enabled test binary) fails the test.
func testLogger(t *testing.T) hclog.Logger {
	lb := &hostproc.Buffer{}
	t.Cleanup(func() {
		s := lb.String()
		if strings.Contains(s, "DATA RACE") {
			t.Errorf("a worker reported a data race:\n%s", s)
		} else if t.Failed() && s != "" {
			t.Logf("executor log:\n%s", s)
		}
	})
	return hclog.New(&hclog.LoggerOptions{Name: "multiproc-test", Output: lb, Level: hclog.Debug})
}

func testOptions(t *testing.T) Options {
	return Options{
		Processes:     2,
		GOMAXPROCS:    1,
		Inflight:      1,
		Prefetch:      0,
		QueueSize:     8,
		Exe:           os.Args[0],
		DataDir:       t.TempDir(),
		LargeFileName: "large_file.txt",
		Log:           testLogger(t),
	}
}

// newExecutor starts an Executor whose Close, at the end of the test, must
// return in time and leave no worker process behind.
func newExecutor(t *testing.T, mod func(*Options)) *Executor {
	t.Helper()
	opt := testOptions(t)
	if mod != nil {
		mod(&opt)
	}
	e, err := New(opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { closeAndCheck(t, e) })
	return e
}

// closeAndCheck closes e and checks that every worker process is gone.
func closeAndCheck(t *testing.T, e *Executor) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		e.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(hangMax):
		t.Errorf("Close did not return within %v", hangMax)
		return
	}
	st, _ := e.Stats(context.Background())
	for _, w := range st.Workers {
		waitGone(t, w.PID)
	}
}

// waitGone waits for process pid to be gone (or a zombie).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Errorf("bad worker pid %d", pid)
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if processGone(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("worker process %d still alive", pid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, rerr := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if rerr != nil {
		return os.IsNotExist(rerr)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

type outcomeT struct {
	res     taskproto.Result
	err     error
	elapsed time.Duration
}

// await calls wait in a goroutine and fails the test if it takes more than
// d.
func await(t *testing.T, wait func() (taskproto.Result, error), d time.Duration) outcomeT {
	t.Helper()
	start := time.Now()
	ch := make(chan outcomeT, 1)
	go func() {
		res, err := wait()
		ch <- outcomeT{res, err, time.Since(start)}
	}()
	select {
	case o := <-ch:
		return o
	case <-time.After(d):
		t.Fatalf("task did not return within %v", d)
		panic("unreachable")
	}
}

// submit submits task to e and returns a function that waits for its
// outcome. A second outcome for the task panics.
func submit(e *Executor, ctx context.Context, task taskproto.Task) func() (taskproto.Result, error) {
	type outcome struct {
		res taskproto.Result
		err error
	}
	ch := make(chan outcome, 1)
	e.Submit(ctx, task, func(res taskproto.Result, err error) {
		select {
		case ch <- outcome{res, err}:
		default:
			panic("done called twice for one task")
		}
	})
	return func() (taskproto.Result, error) {
		o := <-ch
		return o.res, o.err
	}
}

func run(t *testing.T, e *Executor, ctx context.Context, task taskproto.Task, d time.Duration) outcomeT {
	t.Helper()
	return await(t, submit(e, ctx, task), d)
}

func stats(t *testing.T, e *Executor) taskproto.Stats {
	t.Helper()
	st, err := e.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

// waitStats polls Stats until cond holds, failing the test after d.
func waitStats(t *testing.T, e *Executor, d time.Duration, what string, cond func(taskproto.Stats) bool) taskproto.Stats {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := stats(t, e)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; stats %+v", d, what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantCode(t *testing.T, err error, code taskproto.Code) {
	t.Helper()
	var te *taskproto.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T): want *taskproto.Error %s", err, err, code)
	}
	if te.Code != code {
		t.Fatalf("error code %q (%v): want %q", te.Code, err, code)
	}
}

func allReady(st taskproto.Stats) bool {
	for _, w := range st.Workers {
		if w.State == "restarting" {
			return false
		}
	}
	return true
}

package plugin

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// hangGuard bounds every wait in these tests: far longer than anything
// should take, short enough that a hang fails the test instead of the run.
const hangGuard = 5 * time.Second

// fakeExecutor is a scripted Executor: each test supplies the behaviour;
// by default a task's result is its n.
type fakeExecutor struct {
	info   taskproto.StrategyInfo
	submit func(ctx context.Context, t taskproto.Task, done taskproto.Done)
	stats  func(ctx context.Context) (taskproto.Stats, error)
}

func (f *fakeExecutor) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	if f.submit == nil {
		done(taskproto.Result{Value: strconv.FormatInt(t.N, 10)}, nil)
		return
	}
	f.submit(ctx, t, done)
}

func (f *fakeExecutor) Info() taskproto.StrategyInfo { return f.info }

func (f *fakeExecutor) Stats(ctx context.Context) (taskproto.Stats, error) {
	if f.stats == nil {
		return taskproto.Stats{}, nil
	}
	return f.stats(ctx)
}

// blocking answers each task only when its context ends, and hands every
// context it saw to arrived.
func blocking(arrived chan<- context.Context) *fakeExecutor {
	return &fakeExecutor{submit: func(ctx context.Context, _ taskproto.Task, done taskproto.Done) {
		arrived <- ctx
		context.AfterFunc(ctx, func() { done(taskproto.Result{}, ctx.Err()) })
	}}
}

// served is ServeTasks' return: done is closed when it has returned.
type served struct {
	done chan struct{}
	err  error
}

// pair joins a Remote and ServeTasks(exec) over a real socketpair. It
// returns the Remote, the far end's socket (for tests that break it), and
// ServeTasks' return.
func pair(t *testing.T, exec taskproto.Executor) (*Remote, net.Conn, *served) {
	t.Helper()
	ours, theirs, err := NewChannel("test")
	if err != nil {
		t.Fatal(err)
	}
	far, err := net.FileConn(theirs)
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	sv := &served{done: make(chan struct{})}
	go func() {
		sv.err = ServeTasks(context.Background(), far, exec, nil, PluginHop)
		close(sv.done)
	}()
	r := NewRemote(ours, taskproto.StrategyInfo{Name: "fake"}, "plugin fake", BatchHooks{})
	t.Cleanup(func() {
		r.Close()
		far.Close()
		select {
		case <-sv.done:
		case <-time.After(hangGuard):
			t.Error("ServeTasks did not return after the channel closed")
		}
	})
	return r, far, sv
}

type outcome struct {
	res taskproto.Result
	err error
}

// submit submits t and returns a channel for its outcome; a second
// outcome for the same task fails the test.
func submit(t *testing.T, e taskproto.Executor, ctx context.Context, task taskproto.Task) <-chan outcome {
	ch := make(chan outcome, 1)
	e.Submit(ctx, task, func(res taskproto.Result, err error) {
		select {
		case ch <- outcome{res, err}:
		default:
			t.Errorf("task %+v answered twice", task)
		}
	})
	return ch
}

func await(t *testing.T, ch <-chan outcome, what string) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(hangGuard):
		t.Fatalf("%s: no answer within %v", what, hangGuard)
		return outcome{}
	}
}

func wantCode(t *testing.T, err error, code taskproto.Code) *taskproto.Error {
	t.Helper()
	var te *taskproto.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Fatalf("error %v (%T), want code %s", err, err, code)
	}
	return te
}

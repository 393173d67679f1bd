// Package executortest has what the tests of both ends of the protocol
// (the plugin's in taskproto/plugin, the host's in internal/launch) use to
// script an executor and wait for its answers, bounded in time.
package executortest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// HangGuard bounds every wait in these tests: far longer than anything
// should take, short enough that a hang fails the test instead of the run.
const HangGuard = 5 * time.Second

// Executor is a scripted taskproto.Executor: each test supplies the
// behaviour; by default a task's result is its n.
type Executor struct {
	Information taskproto.StrategyInfo
	OnSubmit    func(ctx context.Context, t taskproto.Task, done taskproto.Done)
	OnStats     func(ctx context.Context) (taskproto.Stats, error)
}

// Submit runs OnSubmit, or answers t with its n.
func (f *Executor) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	if f.OnSubmit == nil {
		done(taskproto.Result{Value: strconv.FormatInt(t.N, 10)}, nil)
		return
	}
	f.OnSubmit(ctx, t, done)
}

// Info is Information.
func (f *Executor) Info() taskproto.StrategyInfo { return f.Information }

// Stats runs OnStats, or returns zero stats.
func (f *Executor) Stats(ctx context.Context) (taskproto.Stats, error) {
	if f.OnStats == nil {
		return taskproto.Stats{}, nil
	}
	return f.OnStats(ctx)
}

// Blocking answers each task only when its context ends, and hands every
// context it saw to arrived.
func Blocking(arrived chan<- context.Context) *Executor {
	return &Executor{OnSubmit: func(ctx context.Context, _ taskproto.Task, done taskproto.Done) {
		arrived <- ctx
		context.AfterFunc(ctx, func() { done(taskproto.Result{}, ctx.Err()) })
	}}
}

// Outcome is what a task was answered.
type Outcome struct {
	Res taskproto.Result
	Err error
}

// Submit submits task to e and returns a channel for its outcome; a second
// outcome for the same task fails the test.
func Submit(t testing.TB, e taskproto.Executor, ctx context.Context, task taskproto.Task) <-chan Outcome {
	ch := make(chan Outcome, 1)
	e.Submit(ctx, task, func(res taskproto.Result, err error) {
		select {
		case ch <- Outcome{res, err}:
		default:
			t.Errorf("task %+v answered twice", task)
		}
	})
	return ch
}

// Await is the outcome ch delivers, failing the test after HangGuard.
func Await(t testing.TB, ch <-chan Outcome, what string) Outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(HangGuard):
		t.Fatalf("%s: no answer within %v", what, HangGuard)
		return Outcome{}
	}
}

// WantCode fails the test unless err is a *taskproto.Error of code.
func WantCode(t testing.TB, err error, code taskproto.Code) *taskproto.Error {
	t.Helper()
	var te *taskproto.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Fatalf("error %v (%T), want code %s", err, err, code)
	}
	return te
}

package tasks

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// Meter counts a strategy's tasks for its Stats, and runs them: a strategy
// embeds one, runs each task with Run, refuses with Refuse, keeps Queued
// as its queue grows and shrinks, and answers Stats with Snapshot.
type Meter struct {
	Running, Queued, Completed, Failed atomic.Int64
}

// Snapshot is the counts as Stats, for a strategy that runs at most
// capacity tasks at once (0: no bound of its own).
func (m *Meter) Snapshot(capacity int64) taskproto.Stats {
	return taskproto.Stats{
		Running:   m.Running.Load(),
		Queued:    m.Queued.Load(),
		Completed: m.Completed.Load(),
		Failed:    m.Failed.Load(),
		Capacity:  capacity,
	}
}

// TaskRunner runs one task: a Runner, or whatever a strategy runs its
// tasks in (a sandbox's instance, say).
type TaskRunner interface {
	Run(ctx context.Context, t taskproto.Task) (string, error)
}

// Run runs t with r on behalf of worker (the name its result carries),
// times it, counts it, stamps its run on the task's timeline if it has
// one, and answers done; queued is how long it waited for its turn. A task
// whose caller has gone by its turn is answered ctx.Err() without running.
func (m *Meter) Run(ctx context.Context, r TaskRunner, t taskproto.Task, worker string, queued time.Duration, done taskproto.Done) {
	res := taskproto.Result{Worker: worker, Queue: queued}
	m.Running.Add(1)
	start := time.Now()
	v, err := "", ctx.Err()
	if err == nil {
		v, err = r.Run(ctx, t)
	}
	res.Run = time.Since(start)
	m.Running.Add(-1)
	if tl := taskproto.TimelineFrom(ctx); tl != nil {
		tl.StampAt(taskproto.StageTaskStart, taskproto.MonotonicAt(start))
		tl.StampAt(taskproto.StageTaskEnd, taskproto.MonotonicAt(start.Add(res.Run)))
	}
	if err != nil {
		m.Failed.Add(1)
		done(res, err)
		return
	}
	m.Completed.Add(1)
	res.Value = v
	done(res, nil)
}

// Refuse answers a task that is not taken at all, counting it failed.
func (m *Meter) Refuse(done taskproto.Done, res taskproto.Result, err error) {
	m.Failed.Add(1)
	done(res, err)
}

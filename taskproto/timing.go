package taskproto

import (
	"context"
	"sync/atomic"
	"time"
)

// Stage is a point a request passes on its way through wslab: its
// timeline (a request's "timing": true) records the instant of each.
type Stage uint8

// The stages, in the order a request passes them. A request passes only
// the stages of its strategy: inproc none of the plugin's, pool none of a
// worker's.
const (
	StageHostRead     Stage = iota // the host has read the request's frame
	StageHostSubmit                // the host hands the task to the strategy
	StageHostSent                  // the host's write of the task to a plugin or worker began
	StagePluginRecv                // the plugin has read the task
	StageNATSPublish               // the dispatcher publishes the task to NATS
	StageNATSDeliver               // NATS has delivered the task to a worker
	StageWorkerRecv                // the worker has read the task (a runner takes it)
	StageTaskStart                 // the task starts running
	StageTaskEnd                   // the task has ended
	StageWorkerSent                // the worker sends the outcome
	StageNATSResult                // the dispatcher has the outcome from NATS
	StagePluginSent                // the plugin sends the outcome
	StageHostRecv                  // the host has read the outcome
	StageReplyWritten              // the host's write of the reply frame began
	NumStages
)

var stageNames = [NumStages]string{
	"host_read", "host_submit", "host_sent", "plugin_recv", "nats_publish", "nats_deliver", "worker_recv",
	"task_start", "task_end", "worker_sent", "nats_result", "plugin_sent", "host_recv", "reply_written",
}

// String is the stage's name, as replies and reports spell it.
func (s Stage) String() string {
	if s < NumStages {
		return stageNames[s]
	}
	return "stage?"
}

// StageNamed is the stage called name.
func StageNamed(name string) (Stage, bool) {
	for i, n := range stageNames {
		if n == name {
			return Stage(i), true
		}
	}
	return 0, false
}

// Monotonic is the time now on CLOCK_MONOTONIC in nanoseconds: one clock
// for every process on the machine, so that instants stamped by the host,
// a plugin and its workers can be subtracted from one another.
func Monotonic() int64 { return monoAt(time.Now()) }

// MonotonicAt is when t was on CLOCK_MONOTONIC, for a t read from this
// process's clock (time.Now).
func MonotonicAt(t time.Time) int64 { return monoAt(t) }

// Timeline is the instants of the stages a request passed, each 0 until
// stamped. Stamps may come from any goroutine. A nil *Timeline stamps
// nothing, so that code on the task path stamps unconditionally.
type Timeline struct {
	at [NumStages]atomic.Int64
}

// Stamp records that the request is at s now.
func (tl *Timeline) Stamp(s Stage) {
	if tl != nil {
		tl.at[s].Store(Monotonic())
	}
}

// StampAt records that the request was at s at ns (CLOCK_MONOTONIC).
func (tl *Timeline) StampAt(s Stage, ns int64) {
	if tl != nil && s < NumStages && ns > 0 {
		tl.at[s].Store(ns)
	}
}

// StampIfUnset records ns for s unless s has a stamp already.
func (tl *Timeline) StampIfUnset(s Stage, ns int64) {
	if tl != nil && ns > 0 {
		tl.at[s].CompareAndSwap(0, ns)
	}
}

// At is the instant of s, 0 when the request did not pass it.
func (tl *Timeline) At(s Stage) int64 {
	if tl == nil {
		return 0
	}
	return tl.at[s].Load()
}

// Each calls f for every stamped stage, in stage order.
func (tl *Timeline) Each(f func(Stage, int64)) {
	if tl == nil {
		return
	}
	for s := range NumStages {
		if ns := tl.at[s].Load(); ns != 0 {
			f(s, ns)
		}
	}
}

// Merge takes the stamps of a timeline sent by another process (stage
// name → instant); names it does not know are ignored.
func (tl *Timeline) Merge(stamps map[string]int64) {
	for name, ns := range stamps {
		if s, ok := StageNamed(name); ok {
			tl.StampAt(s, ns)
		}
	}
}

// Map is the stamps as stage name → instant, as they cross a process
// boundary.
func (tl *Timeline) Map() map[string]int64 {
	m := map[string]int64{}
	tl.Each(func(s Stage, ns int64) { m[s.String()] = ns })
	return m
}

// EndedAt fills in the task's own stages for a strategy that did not
// stamp them: it ended at end, having run for run.
func (tl *Timeline) EndedAt(end int64, run time.Duration) {
	if tl == nil {
		return
	}
	tl.StampIfUnset(StageTaskEnd, end)
	tl.StampIfUnset(StageTaskStart, tl.At(StageTaskEnd)-run.Nanoseconds())
}

type timelineKey struct{}

// WithTimeline is ctx carrying the timeline of its request: whatever
// handles the task under ctx stamps it (Stamp).
func WithTimeline(ctx context.Context, tl *Timeline) context.Context {
	return context.WithValue(ctx, timelineKey{}, tl)
}

// TimelineFrom is the timeline ctx carries, nil when its request did not
// ask for one.
func TimelineFrom(ctx context.Context) *Timeline {
	tl, _ := ctx.Value(timelineKey{}).(*Timeline)
	return tl
}

// Stamp records that the task under ctx is at s now, if its request asked
// for its timeline. Strategies call it for StageTaskStart and
// StageTaskEnd; those that do not get them from their Result's Run.
func Stamp(ctx context.Context, s Stage) { TimelineFrom(ctx).Stamp(s) }

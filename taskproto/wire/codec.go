package wire

import (
	"context"
	"time"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/tracing"
)

// The task codec: how a task, its deadline and its outcome cross a process
// boundary. The host's plugin hop, the multiproc strategy's workers and the
// distributed strategy's NATS messages all use it.

// TaskMessage is t as the wire carries it, with the time ctx still allows
// it (none when ctx has no deadline).
func TaskMessage(ctx context.Context, seq uint64, t taskproto.Task) *pb.Task {
	m := &pb.Task{Seq: seq, Kind: t.Kind, N: t.N, Timing: taskproto.TimelineFrom(ctx) != nil,
		Traceparent: tracing.FromContext(ctx)}
	if dl, ok := ctx.Deadline(); ok {
		// At least a millisecond: 0 means no deadline.
		m.TimeoutMs = max(time.Until(dl).Milliseconds(), 1)
	}
	return m
}

// TaskOf is the task a wire message carries.
func TaskOf(m *pb.Task) taskproto.Task {
	return taskproto.Task{Kind: m.GetKind(), N: m.GetN()}
}

// TaskDeadline is when the task m, received at received, must end; ok is
// false when it carries no deadline.
func TaskDeadline(m *pb.Task, received time.Time) (deadline time.Time, ok bool) {
	if m.GetTimeoutMs() <= 0 {
		return time.Time{}, false
	}
	return received.Add(time.Duration(m.GetTimeoutMs()) * time.Millisecond), true
}

// TaskContext is the context the receiver runs m under: parent's, ended at
// the deadline m carries, and carrying a new timeline when m asks for one.
func TaskContext(parent context.Context, m *pb.Task) (context.Context, context.CancelFunc) {
	if m.GetTiming() {
		parent = taskproto.WithTimeline(parent, &taskproto.Timeline{})
	}
	if dl, ok := TaskDeadline(m, time.Now()); ok {
		return context.WithDeadline(parent, dl)
	}
	return context.WithCancel(parent)
}

// Hop names the stages the receiving end of a data channel stamps on a
// task's timeline (where it read the task and where it sent the outcome)
// and the span it records of the task when the task is traced.
type Hop struct {
	Recv, Sent taskproto.Stage
	Span       string
}

// The hops of a plugin serving the host and of a worker serving a plugin
// or the host.
var (
	PluginHop = Hop{Recv: taskproto.StagePluginRecv, Sent: taskproto.StagePluginSent, Span: tracing.SpanPluginTask}
	WorkerHop = Hop{Recv: taskproto.StageWorkerRecv, Sent: taskproto.StageWorkerSent, Span: tracing.SpanWorkerTask}
)

// ResponseMessage is the outcome of task seq as the wire carries it; ctx is
// the task's, to name the code of an error it caused (see AsError), and to
// carry its timeline, which is stamped sent (a Hop's Sent) now.
func ResponseMessage(ctx context.Context, seq uint64, r taskproto.Result, err error, sent taskproto.Stage) *pb.ExecuteResponse {
	m := &pb.ExecuteResponse{Seq: seq, Worker: r.Worker, QueueUs: r.Queue.Microseconds(), RunUs: r.Run.Microseconds()}
	if tl := taskproto.TimelineFrom(ctx); tl != nil {
		now := taskproto.Monotonic()
		tl.EndedAt(now, r.Run)
		tl.StampAt(sent, now)
		m.Timing = tl.Map()
	}
	if err != nil {
		e := taskproto.AsError(ctx, err)
		m.ErrorCode, m.ErrorMessage = string(e.Code), e.Message
	} else {
		m.Result = r.Value
	}
	return m
}

// MergeTiming adds the stages a wire message was stamped with to the
// timeline of ctx, the task's, if it has one.
func MergeTiming(ctx context.Context, m *pb.ExecuteResponse) {
	if len(m.GetTiming()) > 0 {
		taskproto.TimelineFrom(ctx).Merge(m.GetTiming())
	}
}

// ResultOf is the outcome a wire message carries.
func ResultOf(m *pb.ExecuteResponse) (taskproto.Result, error) {
	res := taskproto.Result{
		Value:  m.GetResult(),
		Worker: m.GetWorker(),
		Queue:  time.Duration(m.GetQueueUs()) * time.Microsecond,
		Run:    time.Duration(m.GetRunUs()) * time.Microsecond,
	}
	if m.GetErrorCode() != "" {
		return res, &taskproto.Error{Code: taskproto.Code(m.GetErrorCode()), Message: m.GetErrorMessage()}
	}
	return res, nil
}

// TaskRequest is the data-channel request that carries m.
func TaskRequest(m *pb.Task) *pb.ExecuteRequest {
	return &pb.ExecuteRequest{Msg: &pb.ExecuteRequest_Task{Task: m}}
}

// CancelRequest is the data-channel request that cancels task seq.
func CancelRequest(seq uint64) *pb.ExecuteRequest {
	return &pb.ExecuteRequest{Msg: &pb.ExecuteRequest_Cancel{Cancel: &pb.Cancel{Seq: seq}}}
}

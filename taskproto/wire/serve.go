package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/tracing"
)

// ServeTasks is the receiving end of a data channel: it reads tasks from
// conn, submits each to exec under a context that carries its deadline,
// and writes each outcome back; a cancel stops its task. It returns when
// conn ends, once every task it submitted has been answered (or, past
// that, has been cancelled and stopped). A plugin serves the host's tasks
// with it, and a multiproc worker its plugin's; hop names the stages it
// stamps on the timeline of a task that asks for one.
func ServeTasks(ctx context.Context, conn io.ReadWriter, exec taskproto.Executor, log hclog.Logger, hop Hop) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancelAll := context.WithCancel(ctx)
	s := &taskServer{
		exec:    exec,
		hop:     hop,
		out:     NewFrameWriter(conn),
		log:     log,
		running: map[uint64]context.CancelFunc{},
	}
	in := NewFrameReader(conn)
	var err error
	for {
		var req pb.ExecuteRequest
		if err = in.Read(&req); err != nil {
			break
		}
		s.handle(ctx, &req, in.Buffered())
	}
	cancelAll()
	s.wg.Wait()
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("read tasks: %w", err)
}

type taskServer struct {
	exec taskproto.Executor
	hop  Hop
	out  *FrameWriter
	log  hclog.Logger

	mu      sync.Mutex
	running map[uint64]context.CancelFunc
	held    bool // replies are held back while a batch of requests is read
	wg      sync.WaitGroup
}

// handle acts on one request. more says the reader holds more requests
// already: replies are then held back and leave together after the batch.
func (s *taskServer) handle(ctx context.Context, req *pb.ExecuteRequest, more bool) {
	if more && !s.held {
		s.out.Hold()
		s.held = true
	}
	switch m := req.GetMsg().(type) {
	case *pb.ExecuteRequest_Cancel:
		s.mu.Lock()
		cancel := s.running[m.Cancel.GetSeq()]
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	case *pb.ExecuteRequest_Task:
		s.start(ctx, m.Task)
	}
	if !more && s.held {
		s.held = false
		s.out.Release()
	}
}

func (s *taskServer) start(parent context.Context, m *pb.Task) {
	seq := m.GetSeq()
	ctx, cancel := TaskContext(parent, m)
	taskproto.Stamp(ctx, s.hop.Recv)
	s.mu.Lock()
	if _, dup := s.running[seq]; dup {
		s.mu.Unlock()
		cancel()
		s.log.Warn("task sequence number already running, ignoring the second", append(tracing.LogArgs(ctx), "seq", seq)...)
		return
	}
	s.running[seq] = cancel
	s.mu.Unlock()
	var span trace.Span
	if m.GetTraceparent() != "" || tracing.Enabled() {
		ctx, span = tracing.Start(ctx, m.GetTraceparent(), s.hop.Span, trace.SpanKindServer,
			trace.WithAttributes(attribute.String("wslab.task.kind", m.GetKind()), attribute.Int64("wslab.task.n", m.GetN())))
	}
	s.wg.Add(1)
	s.exec.Submit(ctx, TaskOf(m), func(res taskproto.Result, err error) {
		resp := ResponseMessage(ctx, seq, res, err, s.hop.Sent)
		if span != nil {
			tracing.End(span, resp.GetErrorCode(), resp.GetErrorMessage())
		}
		s.mu.Lock()
		delete(s.running, seq)
		s.mu.Unlock()
		cancel()
		if werr := s.out.Write(resp); werr != nil {
			s.log.Debug("write reply", append(tracing.LogArgs(ctx), "seq", seq, "error", werr)...)
		}
		s.wg.Done()
	})
}

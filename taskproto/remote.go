package taskproto

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wslab/wslab/taskproto/pb"
)

// RemoteExecutor is the host's Executor for a plugin: tasks are multiplexed
// onto one bidirectional stream and matched to replies by sequence number.
// When the stream breaks (the plugin died) every pending task fails with
// executor_failed and Done is closed.
type RemoteExecutor struct {
	client pb.ExecutorClient
	info   StrategyInfo
	stream pb.Executor_ExecuteClient
	cancel context.CancelFunc

	sendMu sync.Mutex // a gRPC stream allows one sender at a time
	seq    atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan *pb.ExecuteResponse
	err     error // why the stream ended; set once, before done is closed
	done    chan struct{}
}

func newRemoteExecutor(client pb.ExecutorClient, info StrategyInfo) (*RemoteExecutor, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := client.Execute(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open task stream: %w", err)
	}
	r := &RemoteExecutor{
		client:  client,
		info:    info,
		stream:  stream,
		cancel:  cancel,
		pending: make(map[uint64]chan *pb.ExecuteResponse),
		done:    make(chan struct{}),
	}
	go r.receive()
	return r, nil
}

func (r *RemoteExecutor) receive() {
	for {
		resp, err := r.stream.Recv()
		if err != nil {
			r.mu.Lock()
			r.err = err
			r.pending = nil
			r.mu.Unlock()
			close(r.done)
			return
		}
		r.mu.Lock()
		ch, ok := r.pending[resp.GetSeq()]
		delete(r.pending, resp.GetSeq())
		r.mu.Unlock()
		if ok {
			ch <- resp // buffered: never blocks
		}
	}
}

// Done is closed when the task stream has ended.
func (r *RemoteExecutor) Done() <-chan struct{} { return r.done }

// Err says why the stream ended, once Done is closed.
func (r *RemoteExecutor) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Info describes the plugin's strategy as it reported itself on Configure.
func (r *RemoteExecutor) Info() StrategyInfo { return r.info }

// Stats asks the plugin for its statistics.
func (r *RemoteExecutor) Stats(ctx context.Context) (Stats, error) {
	resp, err := r.client.Stats(ctx, &pb.StatsRequest{})
	if err != nil {
		return Stats{}, fmt.Errorf("plugin stats: %w", err)
	}
	return statsFromPB(resp), nil
}

// Execute sends t to the plugin and waits for its reply, ctx, or the end of
// the stream, whichever comes first.
func (r *RemoteExecutor) Execute(ctx context.Context, t Task) (Result, error) {
	return r.Submit(ctx, t)()
}

// Submit sends t to the plugin at once; tasks reach the plugin in the order
// of the Submit calls.
func (r *RemoteExecutor) Submit(ctx context.Context, t Task) (wait func() (Result, error)) {
	seq := r.seq.Add(1)
	ch := make(chan *pb.ExecuteResponse, 1)
	r.mu.Lock()
	if r.pending == nil {
		r.mu.Unlock()
		return failedWait(r.failed())
	}
	r.pending[seq] = ch
	r.mu.Unlock()

	task := &pb.Task{Seq: seq, Kind: t.Kind, N: t.N}
	if dl, ok := ctx.Deadline(); ok {
		task.TimeoutMs = max(time.Until(dl).Milliseconds(), 1)
	}
	if err := r.send(&pb.ExecuteRequest{Msg: &pb.ExecuteRequest_Task{Task: task}}); err != nil {
		r.forget(seq)
		return failedWait(Errorf(CodeExecutorFailed, "send task to plugin %s: %v", r.info.Name, err))
	}

	return func() (Result, error) {
		select {
		case resp := <-ch:
			return resultFromPB(resp)
		case <-ctx.Done():
			r.forget(seq)
			// Best effort: the plugin stops the task; its late reply is dropped.
			_ = r.send(&pb.ExecuteRequest{Msg: &pb.ExecuteRequest_Cancel{Cancel: &pb.Cancel{Seq: seq}}})
			return Result{}, ctx.Err()
		case <-r.done:
			select {
			case resp := <-ch: // the reply won the race with the stream's end
				return resultFromPB(resp)
			default:
				return Result{}, r.failed()
			}
		}
	}
}

func failedWait(err error) func() (Result, error) {
	return func() (Result, error) { return Result{}, err }
}

func (r *RemoteExecutor) send(req *pb.ExecuteRequest) error {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	return r.stream.Send(req)
}

func (r *RemoteExecutor) forget(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending != nil {
		delete(r.pending, seq)
	}
}

func (r *RemoteExecutor) failed() *Error {
	err := r.Err()
	if err == nil || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
		return Errorf(CodeExecutorFailed, "plugin %s is stopped", r.info.Name)
	}
	return Errorf(CodeExecutorFailed, "plugin %s failed under the task: %v", r.info.Name, err)
}

// Close ends the task stream; pending tasks fail with executor_failed.
func (r *RemoteExecutor) Close() error {
	r.cancel()
	<-r.done
	return nil
}

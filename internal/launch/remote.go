package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/wire"
)

// Remote is the sending end of a data channel: an Executor whose tasks run
// on the other side (a plugin, for the host; a worker process, for the
// multiproc strategy). Tasks are written as they are submitted and matched
// to their replies by sequence number; a task whose context ends is
// answered at once and a cancel follows it over the channel. When the
// channel breaks every task still out fails with executor_failed and Done
// is closed.
type Remote struct {
	conn net.Conn
	out  *wire.FrameWriter
	info taskproto.StrategyInfo
	// what names the other side in errors: "plugin pool", "worker w2".
	what string

	batch BatchHooks

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]*call // nil once the channel has ended
	err     error            // why it ended; set before done is closed
	done    chan struct{}
}

type call struct {
	ctx  context.Context
	done taskproto.Done
	stop func() bool // unregisters the cancel on ctx's end
}

// BatchHooks let the receiver of a Remote's answers work in batches: the
// Remote's reader calls Begin before it delivers the replies it has read
// together, and End after the last of them, on its own goroutine. The
// host writes the WebSocket replies a batch caused at its End, on that
// goroutine: one system call per connection, no goroutine woken. Either
// may be nil.
type BatchHooks struct {
	Begin, End func()
}

// NewRemote sends tasks over conn, whose far end serves them with
// wire.ServeTasks, and starts reading replies. info describes the far end;
// batch may be the zero value.
func NewRemote(conn net.Conn, info taskproto.StrategyInfo, what string, batch BatchHooks) *Remote {
	r := &Remote{
		conn:    conn,
		out:     wire.NewFrameWriter(conn),
		info:    info,
		what:    what,
		batch:   batch,
		pending: map[uint64]*call{},
		done:    make(chan struct{}),
	}
	go r.receive()
	return r
}

// Submit writes t to the channel.
func (r *Remote) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	c := &call{ctx: ctx, done: done}
	r.mu.Lock()
	if r.pending == nil {
		r.mu.Unlock()
		done(taskproto.Result{}, r.failed())
		return
	}
	r.seq++
	seq := r.seq
	taskproto.Stamp(ctx, taskproto.StageHostSent)
	flush, err := r.out.Append(wire.TaskRequest(wire.TaskMessage(ctx, seq, t)))
	if err != nil {
		r.mu.Unlock()
		done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeExecutorFailed, "send task to %s: %v", r.what, err))
		return
	}
	r.pending[seq] = c
	// Registered under r.mu, after the task is appended: the cancel is
	// appended after the task it cancels.
	c.stop = context.AfterFunc(ctx, func() { r.abandon(seq) })
	r.mu.Unlock()
	if flush {
		r.out.Flush()
	}
}

// abandon answers a task whose context ended and tells the far end.
func (r *Remote) abandon(seq uint64) {
	r.mu.Lock()
	c := r.pending[seq]
	if c == nil { // answered first, or the channel ended
		r.mu.Unlock()
		return
	}
	delete(r.pending, seq)
	flush, _ := r.out.Append(wire.CancelRequest(seq))
	r.mu.Unlock()
	if flush {
		r.out.Flush()
	}
	c.done(taskproto.Result{}, c.ctx.Err())
}

func (r *Remote) receive() {
	in := wire.NewFrameReader(r.conn)
	var err error
	held, inBatch := false, false
	for {
		var resp pb.ExecuteResponse
		if err = in.Read(&resp); err != nil {
			break
		}
		if !inBatch {
			inBatch = true
			r.batch.Call(r.batch.Begin)
		}
		// While a batch of replies is delivered, the tasks they make room
		// for are held and leave together.
		if !held && in.Buffered() {
			r.out.Hold()
			held = true
		}
		r.deliver(&resp)
		if !in.Buffered() {
			if held {
				held = false
				r.out.Release()
			}
			inBatch = false
			r.batch.Call(r.batch.End)
		}
	}
	if held {
		r.out.Release()
	}
	if inBatch {
		r.batch.Call(r.batch.End)
	}
	r.mu.Lock()
	calls := r.pending
	r.pending = nil
	r.err = err
	r.mu.Unlock()
	close(r.done)
	failed := r.failed()
	for _, c := range calls {
		c.stop()
		c.done(taskproto.Result{}, failed)
	}
}

func (r *Remote) deliver(resp *pb.ExecuteResponse) {
	r.mu.Lock()
	c := r.pending[resp.GetSeq()]
	delete(r.pending, resp.GetSeq())
	r.mu.Unlock()
	if c == nil {
		return // abandoned: its caller has had its answer
	}
	c.stop()
	taskproto.Stamp(c.ctx, taskproto.StageHostRecv)
	wire.MergeTiming(c.ctx, resp)
	c.done(wire.ResultOf(resp))
}

// Call calls hook, one of h's, unless it is nil.
func (BatchHooks) Call(hook func()) {
	if hook != nil {
		hook()
	}
}

// Done is closed when the channel has ended.
func (r *Remote) Done() <-chan struct{} { return r.done }

// Err says why the channel ended, once Done is closed.
func (r *Remote) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Outstanding counts the tasks sent and not yet answered.
func (r *Remote) Outstanding() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

func (r *Remote) failed() *taskproto.Error {
	err := r.Err()
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return taskproto.Errorf(taskproto.CodeExecutorFailed, "%s stopped", r.what)
	}
	return taskproto.Errorf(taskproto.CodeExecutorFailed, "%s failed under the task: %v", r.what, err)
}

// Info describes the far end, as it reported itself.
func (r *Remote) Info() taskproto.StrategyInfo { return r.info }

// Stats counts what is outstanding; a plugin's own statistics come over
// its control channel.
func (r *Remote) Stats(context.Context) (taskproto.Stats, error) {
	return taskproto.Stats{Running: int64(r.Outstanding())}, nil
}

// Close ends the channel; tasks still out fail with executor_failed.
func (r *Remote) Close() error {
	err := r.conn.Close()
	<-r.done
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close data channel: %w", err)
	}
	return nil
}

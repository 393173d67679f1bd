package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/internal/wsproto"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/tracing"
	"github.com/wslab/wslab/tasks"
)

const (
	maxPingWait = 30 * time.Second
	// closeWait bounds how long a closing connection waits for its last
	// frames (a close echo, a 1001) to be written.
	closeWait = time.Second
	// replyReserve is what a request in flight reserves of its
	// connection's reply bytes beyond its id: a reply's fixed part.
	replyReserve = 160
)

var errConnClosed = errors.New("connection closed")

// wsConn is one WebSocket connection. Its reader goroutine (serve) reads
// and admits requests; replies are written by a goroutine that exists only
// while there is something to write (writer.go). It holds no buffer while
// idle.
type wsConn struct {
	srv *Server
	id  uint64 // the connection's number, in log lines and spans
	ws  *websocket.Conn
	raw *lockedConn
	br  *bufio.Reader // gorilla's read buffer, when it is the host's (nil otherwise)

	// ctx is the parent of the connection's tasks: cancelled when the
	// connection ends, and by the server's shutdown.
	ctx    context.Context
	cancel context.CancelCauseFunc

	flow     flow        // its tasks waiting in the scheduler; guarded by Scheduler.mu
	plainSeq uint64      // plain-text requests read so far; reader goroutine only
	ping     *time.Timer // guarded by replies.mu

	replies replyQueue // guarded by its own lock

	// endedFor is why the host closed the connection, when it did
	// (telemetry.Closed...); the reader counts the end.
	endedFor atomic.Pointer[string]
}

// closingFor records why the host closes the connection; the first reason
// stands.
func (c *wsConn) closingFor(reason string) {
	c.endedFor.CompareAndSwap(nil, &reason)
}

// closeReason is why the connection ended, the reader having seen err.
func (c *wsConn) closeReason(err error) string {
	if r := c.endedFor.Load(); r != nil {
		return *r
	}
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return telemetry.ClosedTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return telemetry.ClosedIdle
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return telemetry.ClosedByClient
	}
	if _, ok := err.(*websocket.CloseError); ok {
		return telemetry.ClosedByClient
	}
	return telemetry.ClosedError
}

// task is one accepted request from admission to its reply.
type task struct {
	conn     *wsConn
	flow     *flow
	req      wsproto.Request
	task     taskproto.Task
	plainSeq uint64
	ctx      context.Context
	cancel   context.CancelFunc
	arrived  time.Time
	tl       *taskproto.Timeline // nil unless the request's timeline is recorded
	span     trace.Span          // nil unless the request is traced or carried a trace context
	tctx     taskContext         // what ctx is, or wraps
	reserved int                 // bytes reserved in the connection's reply budget
	done     taskproto.Done      // the scheduler's, given to the strategy

	// Guarded by Scheduler.mu.
	state      taskState
	prev, next *task
	stop       func() bool // unregisters the scheduler's watch on ctx; nil while unwatched
	submitting bool        // inside the strategy's Submit
	unbounded  bool        // a kind the window does not hold back
	// served is the strategy t was handed to (nil until then), which
	// its reply names and its answer is counted under.
	served *servedStrategy
}

func newWSConn(s *Server, ws *websocket.Conn, raw *lockedConn, br *bufio.Reader) *wsConn {
	c := &wsConn{srv: s, id: s.connIDs.Add(1), ws: ws, raw: raw, br: br}
	c.ctx, c.cancel = context.WithCancelCause(s.taskCtx)
	c.replies.init(c)
	return c
}

func (c *wsConn) idleTimeout() time.Duration { return c.srv.opt.TaskTimeout }

func (c *wsConn) pingEvery() time.Duration { return min(c.idleTimeout()/2, maxPingWait) }

// serve reads requests until the connection ends, then ends it.
func (c *wsConn) serve() {
	defer c.end()
	c.ws.SetReadLimit(c.srv.opt.MaxFrameBytes)
	c.ws.SetReadDeadline(time.Now().Add(c.idleTimeout()))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.idleTimeout()))
	})
	// Control frames go through the reply queue, so the reader never
	// blocks on a client that does not read.
	c.ws.SetPingHandler(func(data string) error {
		c.replies.control(opPong, []byte(data))
		return nil
	})
	c.ws.SetCloseHandler(func(code int, _ string) error {
		if code == websocket.CloseNoStatusReceived {
			code = websocket.CloseNormalClosure
		}
		c.replies.control(opClose, closePayload(code, ""))
		return nil
	})
	c.replies.mu.Lock()
	c.ping = time.AfterFunc(c.pingEvery(), c.sendPing)
	c.replies.mu.Unlock()
	batching := false // inside a batch of replies.holdInline
	for {
		var (
			mt   int
			r    io.Reader
			data []byte
			err  error
		)
		if c.br != nil && c.br.Buffered() == 0 {
			err = c.raw.waitReadable() // idle here, on a small stack
		}
		if err == nil {
			mt, r, err = c.ws.NextReader()
		}
		if err == nil {
			data, err = readAll(r)
		}
		if err != nil {
			if batching {
				c.replies.holdInline(false)
			}
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
				c.srv.log.Debug("connection ended", "conn", c.id, "remote", c.ws.RemoteAddr().String(), "error", err)
			}
			c.srv.hostMetrics().Closed(c.closeReason(err))
			if errors.Is(err, websocket.ErrReadLimit) {
				c.drain()
			}
			putBuf(data)
			return
		}
		now := time.Now()
		c.ws.SetReadDeadline(now.Add(c.idleTimeout()))
		// While the client's next message is already here, the replies
		// this reader causes wait for it: those of one read leave in one
		// write, as the client's requests came.
		more := c.br != nil && c.moreBuffered()
		if more && !batching {
			batching = true
			c.replies.holdInline(true)
		}
		c.handle(mt, data, now)
		putBuf(data)
		if !more && batching {
			batching = false
			c.replies.holdInline(false)
		}
	}
}

// moreBuffered says whether a whole message waits in the read buffer.
func (c *wsConn) moreBuffered() bool {
	n := c.br.Buffered()
	if n == 0 {
		return false
	}
	buf, _ := c.br.Peek(n)
	return messageBuffered(buf)
}

// readAll reads a frame into a pooled buffer.
func readAll(r io.Reader) ([]byte, error) {
	b := bytes.NewBuffer(getBuf())
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

// drain reads and drops what the client is still sending of an oversized
// frame, for a moment: closing a socket with unread input resets it, and
// the client would lose the 1009 close frame gorilla has just sent.
func (c *wsConn) drain() {
	c.raw.SetReadDeadline(time.Now().Add(time.Second))
	io.CopyN(io.Discard, c.raw, 16*c.srv.opt.MaxFrameBytes+1<<20)
}

// end runs once the reader has stopped: the connection's queued tasks are
// dropped, its running ones cancelled, and what is left to write gets a
// moment to go before the socket closes.
func (c *wsConn) end() {
	c.srv.sched.Drop(&c.flow)
	c.cancel(errConnClosed)
	c.replies.mu.Lock()
	c.ping.Stop()
	c.replies.mu.Unlock()
	c.replies.closeAfter(closeWait)
	c.raw.Close()
	c.srv.removeConn(c)
}

func (c *wsConn) sendPing() {
	if c.replies.control(opPing, nil) {
		c.replies.mu.Lock()
		c.ping.Reset(c.pingEvery())
		c.replies.mu.Unlock()
	}
}

// goAway closes the connection with 1001 (going away) once the replies
// already queued are written, and gives the client a moment to answer.
func (c *wsConn) goAway() {
	c.closingFor(telemetry.ClosedShutdown)
	c.replies.control(opClose, closePayload(websocket.CloseGoingAway, "server shutting down"))
	c.ws.SetReadDeadline(time.Now().Add(time.Second))
}

// handle parses one frame, read at now, and admits its task, or answers
// why not.
func (c *wsConn) handle(mt int, data []byte, now time.Time) {
	var (
		req  wsproto.Request
		perr *taskproto.Error
	)
	if mt == websocket.BinaryMessage {
		req = wsproto.Request{JSON: true}
		perr = taskproto.Errorf(taskproto.CodeBadRequest, "binary frames are not accepted; send text frames")
	} else {
		req, perr = wsproto.Parse(data, c.srv.opt.Defaults) // its id is a copy: data goes back to the pool
	}
	var seq uint64
	if !req.JSON {
		c.plainSeq++
		seq = c.plainSeq
	}
	if perr == nil {
		if err := tasks.Check(req.Task, c.srv.opt.Limits); err != nil {
			perr = taskproto.AsError(nil, err)
			if !req.JSON && req.Task.Kind == taskproto.KindSleep {
				perr = plainSleepError(req.Task, c.srv.opt.Limits)
			}
		}
	}
	if perr == nil {
		perr = c.admit(req, seq, now)
	}
	if perr != nil {
		c.srv.hostMetrics().Answered(c.id, req.Task.Kind, perr.Code, taskproto.Result{}, false)
		c.srv.live.answered(c.id, req.Task.Kind, perr.Code, 0, time.Time{})
		frame := wsproto.AppendError(getBuf(), req, perr)
		c.replies.add(frame, seq, 0, false, true, -1)
		putBuf(frame)
	}
}

// plainSleepError says, in seconds as plain text speaks them, that a sleep
// is too long.
func plainSleepError(t taskproto.Task, lim taskproto.Limits) *taskproto.Error {
	return taskproto.Errorf(taskproto.CodeOutOfRange, "sleep must be between 0 and %d seconds (timeout_sec), got %d",
		int64(lim.MaxSleep/time.Second), t.N/1000)
}

// admit reserves the request's place on the connection and hands its task
// to the scheduler; the request's frame was read at now.
func (c *wsConn) admit(req wsproto.Request, seq uint64, now time.Time) *taskproto.Error {
	if share := c.srv.opt.TimingSample; req.JSON && share > 0 && !req.Timing {
		req.Timing = rand.Float64() < share
	}
	ctx, cancel := context.WithDeadlineCause(c.ctx, now.Add(c.srv.opt.TaskTimeout), c.srv.timedOut)
	var span trace.Span
	if req.Traceparent != "" || tracing.Enabled() {
		ctx, span = c.startSpan(ctx, req, now)
		req.Traceparent = tracing.FromContext(ctx) // what the reply echoes
	}
	reserve := wsproto.MaxReplySize(req)
	if err := c.replies.reserve(reserve); err != nil {
		endSpan(span, err)
		cancel()
		return err
	}
	t := &task{conn: c, flow: &c.flow, req: req, task: req.Task, plainSeq: seq, arrived: now, reserved: reserve,
		cancel: cancel, span: span}
	t.tctx = taskContext{Context: ctx, t: t}
	t.ctx = &t.tctx
	if req.Timing && req.JSON {
		t.tl = &taskproto.Timeline{}
		t.tl.StampAt(taskproto.StageHostRead, taskproto.MonotonicAt(now))
		t.ctx = taskproto.WithTimeline(t.ctx, t.tl)
	}
	if err := c.srv.sched.Admit(t); err != nil {
		endSpan(span, err)
		t.cancel()
		c.replies.unreserve(reserve)
		return err
	}
	return nil
}

// startSpan starts the span of a request read at now, under the trace
// context it carried, if any (tracing.Start).
func (c *wsConn) startSpan(ctx context.Context, req wsproto.Request, now time.Time) (context.Context, trace.Span) {
	ctx, span := tracing.Start(ctx, req.Traceparent, tracing.SpanRequest, trace.SpanKindServer, trace.WithTimestamp(now))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("wslab.strategy", c.srv.sched.currentServed().info.Name),
			attribute.String("wslab.task.kind", req.Task.Kind),
			attribute.Int64("wslab.task.n", req.Task.N),
			attribute.Int64("wslab.connection", int64(c.id)),
			attribute.String("wslab.request.id", clipID(req.ID)),
		)
	}
	return ctx, span
}

// endSpan ends a request's span with its outcome: err's code, or ok.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		e := taskproto.AsError(nil, err)
		tracing.End(span, string(e.Code), e.Message)
	} else {
		tracing.End(span, "", "")
	}
}

// LogArgs name the request t in a log line: its connection, its id and
// its trace. A strategy's log lines find them in the task's context
// (tracing.LogArgs).
func (t *task) LogArgs() []any {
	args := []any{"request_id", clipID(t.req.ID)}
	if t.conn != nil {
		args = append(args, "conn", t.conn.id)
	}
	if id := tracing.TraceID(t.ctx); id != "" {
		args = append(args, "trace_id", id)
	}
	return args
}

// taskContext is a task's context: the deadline's, which also answers
// the task itself under tracing.RequestKey. It lives in the task, so
// that naming the request costs no allocation.
type taskContext struct {
	context.Context
	t *task
}

func (c *taskContext) Value(key any) any {
	if key == (tracing.RequestKey{}) {
		return c.t
	}
	return c.Context.Value(key)
}

// clipID is a request's id as spans and log lines show it: at most
// maxLoggedID bytes of what the client sent.
func clipID(id json.RawMessage) string {
	if len(id) > maxLoggedID {
		return string(id[:maxLoggedID]) + "…"
	}
	return string(id)
}

// maxLoggedID bounds the share of a request's id that spans and logs keep.
const maxLoggedID = 64

// answer queues t's reply; the scheduler calls it once per admitted task.
// inline says this goroutine may write it (see replyQueue.add).
func (c *wsConn) answer(t *task, res taskproto.Result, err error, inline bool) {
	frame := getBuf()
	// The strategy that ran t names its reply and counts it; a task
	// answered before it was handed over counts under the current one.
	served := t.served
	if served == nil {
		served = c.srv.sched.currentServed()
	}
	if err != nil {
		perr := taskproto.AsError(t.ctx, err) // before cancel: the cause names the code
		served.metrics.Answered(c.id, t.task.Kind, perr.Code, res, false)
		c.srv.live.answered(c.id, t.task.Kind, perr.Code, 0, t.arrived)
		frame = wsproto.AppendError(frame, t.req, perr)
		err = perr
	} else {
		served.metrics.Answered(c.id, t.task.Kind, "", res, true)
		c.srv.live.answered(c.id, t.task.Kind, "", res.Run, t.arrived)
		frame = wsproto.AppendResult(frame, t.req, served.info.Name, res)
	}
	written := -1 // where the reply's write instant goes, if it has a timeline
	if t.tl != nil {
		frame, written = wsproto.AppendTiming(frame, t.tl)
	}
	if t.span != nil {
		endSpan(t.span, err)
	}
	t.cancel()
	c.replies.add(frame, t.plainSeq, t.reserved, true, inline, written)
	putBuf(frame)
}

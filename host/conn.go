package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/internal/wsproto"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

const (
	writeWait   = 10 * time.Second
	maxPingWait = 30 * time.Second
)

// wsConn is one WebSocket connection: its handler goroutine reads, one
// writer goroutine writes (gorilla allows one of each), and every task's
// reply reaches the writer through out.
type wsConn struct {
	srv *Server
	ws  *websocket.Conn

	// ctx is the parent of the connection's tasks: cancelled when the
	// connection ends, and by the server's shutdown.
	ctx    context.Context
	cancel context.CancelCauseFunc

	out        chan outFrame
	inflight   chan struct{} // a slot per task in flight on this connection
	readerDone chan struct{}
	writerDone chan struct{}
	goingAway  chan struct{} // closed by goAway
	goAwayOnce sync.Once

	plainSeq uint64 // plain-text requests read so far; reader goroutine only
}

// outFrame is a reply for the writer. Plain-text replies carry their
// request's sequence number, and the writer sends them in that order.
type outFrame struct {
	plainSeq uint64
	data     []byte
}

func newWSConn(s *Server, ws *websocket.Conn) *wsConn {
	c := &wsConn{
		srv:        s,
		ws:         ws,
		out:        make(chan outFrame, s.opt.MaxInflight+16),
		inflight:   make(chan struct{}, s.opt.MaxInflight),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		goingAway:  make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancelCause(s.taskCtx)
	return c
}

func (c *wsConn) idleTimeout() time.Duration { return c.srv.opt.TaskTimeout }

func (c *wsConn) serve() {
	go c.write()
	c.ws.SetReadLimit(c.srv.opt.MaxFrameBytes)
	c.ws.SetReadDeadline(time.Now().Add(c.idleTimeout()))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.idleTimeout()))
	})
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
				c.srv.log.Debug("connection ended", "remote", c.ws.RemoteAddr(), "error", err)
			}
			if errors.Is(err, websocket.ErrReadLimit) {
				c.drain()
			}
			break
		}
		c.ws.SetReadDeadline(time.Now().Add(c.idleTimeout()))
		c.handle(mt, data)
	}
	c.cancel(errors.New("connection closed"))
	close(c.readerDone)
	<-c.writerDone
	c.ws.Close()
}

// drain reads and drops what the client is still sending of an oversized
// frame, for a moment: closing a socket with unread input resets it, and
// the client would lose the 1009 close frame gorilla has just sent.
func (c *wsConn) drain() {
	conn := c.ws.NetConn()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	io.CopyN(io.Discard, conn, 16*c.srv.opt.MaxFrameBytes+1<<20)
}

func (c *wsConn) handle(mt int, data []byte) {
	var (
		req  wsproto.Request
		perr *taskproto.Error
	)
	if mt == websocket.BinaryMessage {
		req = wsproto.Request{JSON: true}
		perr = taskproto.Errorf(taskproto.CodeBadRequest, "binary frames are not accepted; send text frames")
	} else {
		req, perr = wsproto.Parse(data, c.srv.opt.Defaults)
	}
	var seq uint64
	if !req.JSON {
		c.plainSeq++
		seq = c.plainSeq
	}
	if perr == nil {
		if err := tasks.Check(req.Task, c.srv.opt.Limits); err != nil {
			perr = taskproto.AsError(nil, err)
		}
	}
	if perr == nil {
		perr = c.admit()
	}
	if perr != nil {
		c.send(outFrame{plainSeq: seq, data: wsproto.EncodeError(req, perr)})
		return
	}
	// Admitted here, in the order the frames arrived; waited for elsewhere.
	timeout := c.srv.opt.TaskTimeout
	ctx, cancel := context.WithTimeoutCause(c.ctx, timeout,
		taskproto.Errorf(taskproto.CodeTimeout, "task ran past timeout_sec (%s)", timeout))
	wait := taskproto.Submit(ctx, c.srv.opt.Strategy, req.Task)
	go c.finish(ctx, cancel, wait, req, seq)
}

// admit takes an in-flight slot on the connection and one overall, or says
// why the task cannot be taken. finish gives them back.
func (c *wsConn) admit() *taskproto.Error {
	select {
	case c.inflight <- struct{}{}:
	default:
		return taskproto.Errorf(taskproto.CodeOverloaded,
			"%d requests already in flight on this connection (max_inflight_per_conn); wait for replies", cap(c.inflight))
	}
	if n := c.srv.queued.Add(1); n > c.srv.opt.MaxQueued {
		c.srv.queued.Add(-1)
		<-c.inflight
		return taskproto.Errorf(taskproto.CodeOverloaded, "host has %d tasks queued (max_queued); retry later", c.srv.opt.MaxQueued)
	}
	if !c.srv.tasks.begin() {
		c.srv.queued.Add(-1)
		<-c.inflight
		return taskproto.Errorf(taskproto.CodeShuttingDown, "host is shutting down")
	}
	return nil
}

// finish waits for an admitted task and queues its reply. The task's slots
// are freed before its reply is queued: a client that sends its next
// request as soon as it reads a reply must find a slot free. The task
// counts as running until the reply is queued, so that Shutdown's 1001
// close comes after it.
func (c *wsConn) finish(ctx context.Context, cancel context.CancelFunc, wait func() (taskproto.Result, error), req wsproto.Request, seq uint64) {
	defer c.srv.tasks.end()
	res, err := wait()
	cancel()
	c.srv.queued.Add(-1)
	<-c.inflight
	var frame []byte
	if err != nil {
		frame = wsproto.EncodeError(req, taskproto.AsError(ctx, err))
	} else {
		frame = wsproto.EncodeResult(req, c.srv.strategy, res)
	}
	c.send(outFrame{plainSeq: seq, data: frame})
}

// send hands f to the writer, or drops it if the connection has ended, or
// if its writer is stuck behind a client that does not read while the host
// shuts down (the connection is about to be closed anyway).
func (c *wsConn) send(f outFrame) {
	select {
	case c.out <- f:
		return
	default:
	}
	select {
	case c.out <- f:
	case <-c.writerDone:
	case <-c.srv.taskCtx.Done():
	}
}

// goAway asks the writer to close the connection with 1001 (going away)
// once the replies already queued are written.
func (c *wsConn) goAway() {
	c.goAwayOnce.Do(func() { close(c.goingAway) })
}

func (c *wsConn) write() {
	defer close(c.writerDone)
	ping := time.NewTicker(min(c.idleTimeout()/2, maxPingWait))
	defer ping.Stop()
	w := replyWriter{c: c, nextPlain: 1, heldPlain: make(map[uint64][]byte)}

	for {
		var err error
		select {
		case <-c.readerDone:
			return
		case <-ping.C:
			err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait))
		case f := <-c.out:
			err = w.write(f)
		case <-c.goingAway:
			w.drain() // replies queued before the close go out first
			msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
			c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
			// Give the client a moment to answer the close, then the
			// reader's deadline ends the connection.
			c.ws.SetReadDeadline(time.Now().Add(time.Second))
			return
		}
		if err != nil {
			c.srv.log.Debug("write failed, closing connection", "remote", c.ws.RemoteAddr(), "error", err)
			c.ws.Close() // unblocks the reader
			return
		}
	}
}

// replyWriter writes replies, holding back plain-text ones that overtook
// an earlier plain-text request's. The writer goroutine owns it.
type replyWriter struct {
	c         *wsConn
	nextPlain uint64
	heldPlain map[uint64][]byte
}

// drain writes the replies already queued.
func (w *replyWriter) drain() error {
	for {
		select {
		case f := <-w.c.out:
			if err := w.write(f); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

func (w *replyWriter) write(f outFrame) error {
	if f.plainSeq == 0 {
		return w.c.writeText(f.data)
	}
	w.heldPlain[f.plainSeq] = f.data
	for {
		data, ok := w.heldPlain[w.nextPlain]
		if !ok {
			return nil
		}
		delete(w.heldPlain, w.nextPlain)
		w.nextPlain++
		if err := w.c.writeText(data); err != nil {
			return err
		}
	}
}

func (c *wsConn) writeText(data []byte) error {
	c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		return fmt.Errorf("write reply: %w", err)
	}
	return nil
}

package host

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/internal/wsproto"
	"github.com/wslab/wslab/taskproto"
)

// minWriteWait is the least time a write of replies is given.
const minWriteWait = time.Second

// replyQueue holds a connection's replies until they are written, and the
// connection's bounds: requests count against max_inflight_per_conn from
// admission until their reply is taken for writing, and against
// max_pending_reply_bytes with the largest reply they can have
// (wsproto.MaxReplySize) until it is written. Past that budget new
// requests are refused with overloaded; when the refusals themselves pile
// up past twice the budget, the client is not reading at all and the
// connection is closed with 1008. A write must go at least
// min_reply_read_rate bytes per second (and may take minWriteWait): a
// client that reads slower is closed.
//
// Replies are written by a goroutine started when the first reply of a
// burst is queued, which writes every frame queued meanwhile in one system
// call and ends when nothing is left: an idle connection has no writer and
// no buffer. A reply queued by the connection's own reader (a refusal, a
// task answered as it was handed over) is written by the reader itself
// when the socket takes it without waiting: measured, that halves inproc's
// noop round trip, while writer goroutines keep replies that come from a
// strategy's shared goroutine coalesced and written in parallel (with
// every reply written inline, pipelined noop fell by a quarter). While the
// client's next message already waits in the read buffer, the reader
// holds its own replies until the last of those messages is handled, so
// that requests that came in one read are answered in one write.
// Plain-text replies are held back until the replies to the plain-text
// requests before them have been queued.
type replyQueue struct {
	c *wsConn

	mu         sync.Mutex
	inflight   int // admitted, reply not yet taken for writing
	held       int // bytes: reserved by requests in flight, or queued
	out        []byte
	outReplies int   // replies among the frames in out
	outWritten []int // where in out replies with a timeline take their write instant
	nextPlain  uint64
	heldPlain  map[uint64]heldReply
	writing    bool          // a writer goroutine is running, or the reader owes a write
	closing    bool          // a close frame is queued: nothing may follow it
	closed     bool          // nothing more is written
	warned     bool          // the budget's warning is logged
	idle       chan struct{} // closed when the writer stops, for closeAfter

	// readerBatch says the connection's reader has another message at
	// hand: replies queued by the goroutine that handed their task over
	// (inline) wait for the reader's holdInline(false), and readerOwes
	// says one waits. Set by the reader only, read by any such goroutine.
	readerBatch, readerOwes bool
}

type heldReply struct {
	payload []byte
	counted bool
}

func (q *replyQueue) init(c *wsConn) {
	q.c = c
	q.nextPlain = 1
}

func frameSize(payload int) int {
	switch {
	case payload <= 125:
		return payload + 2
	case payload <= 0xFFFF:
		return payload + 4
	}
	return payload + maxFrameHeader
}

// reserve takes a request's place on the connection, n bytes of the reply
// budget with it, or says why it cannot.
func (q *replyQueue) reserve(n int) *taskproto.Error {
	opt := &q.c.srv.opt
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closing || q.closed:
		return taskproto.Errorf(taskproto.CodeShuttingDown, "connection is closing")
	case q.inflight >= opt.MaxInflight:
		return taskproto.Errorf(taskproto.CodeOverloaded,
			"%d requests already in flight on this connection (max_inflight_per_conn); wait for replies", opt.MaxInflight)
	case int64(q.held) >= opt.MaxPendingReplyBytes:
		if !q.warned {
			q.warned = true
			q.c.srv.log.Warn("connection does not read its replies: refusing its requests",
				"conn", q.c.id, "remote", q.c.ws.RemoteAddr().String(), "pending_bytes", q.held, "max_pending_reply_bytes", opt.MaxPendingReplyBytes)
		}
		return taskproto.Errorf(taskproto.CodeOverloaded,
			"%d bytes of replies are waiting to be read (max_pending_reply_bytes %d); read them before sending more",
			q.held, opt.MaxPendingReplyBytes)
	}
	q.inflight++
	q.held += n
	return nil
}

// unreserve gives back a reservation whose request was not admitted.
func (q *replyQueue) unreserve(n int) {
	q.mu.Lock()
	q.inflight--
	q.held -= n
	q.mu.Unlock()
}

// add queues a text reply; payload is copied, the caller keeps it.
// plainSeq orders plain-text replies (0 for JSON); reserved is what its
// request reserved; counted says it answers an admitted request, whose
// slot it frees once taken for writing; written, unless -1, is where in
// payload the instant its write begins goes (wsproto.AppendTiming).
func (q *replyQueue) add(payload []byte, plainSeq uint64, reserved int, counted, inline bool, written int) {
	q.mu.Lock()
	if q.closing || q.closed { // the connection is going: nobody reads this
		if counted {
			q.inflight--
		}
		q.held -= reserved
		q.mu.Unlock()
		return
	}
	q.held += frameSize(len(payload)) - reserved
	if plainSeq != 0 && plainSeq != q.nextPlain {
		if q.heldPlain == nil {
			q.heldPlain = map[uint64]heldReply{}
		}
		q.heldPlain[plainSeq] = heldReply{bytes.Clone(payload), counted}
	} else {
		if written >= 0 { // JSON: never held back
			q.outWritten = append(q.outWritten, len(q.out)+frameSize(len(payload))-len(payload)+written)
		}
		q.appendLocked(opText, payload, counted)
		for plainSeq != 0 {
			q.nextPlain++
			h, ok := q.heldPlain[q.nextPlain]
			if !ok {
				break
			}
			delete(q.heldPlain, q.nextPlain)
			q.appendLocked(opText, h.payload, h.counted)
		}
	}
	over := int64(q.held) > 2*q.c.srv.opt.MaxPendingReplyBytes
	start := q.startLocked()
	owed := start && inline && q.readerBatch
	q.readerOwes = q.readerOwes || owed
	q.mu.Unlock()
	if over {
		q.abort(websocket.ClosePolicyViolation, "replies are not being read")
		return
	}
	if start {
		switch {
		case owed: // the reader writes it
		case inline:
			q.writeNow()
		case !q.c.srv.opt.batches.hold(q):
			go q.flush(nil, false)
		}
	}
}

// holdInline starts (on) or ends a batch of the connection's reader (see
// readerBatch); at its end, the reader writes what the batch held back.
// Only the reader calls it.
func (q *replyQueue) holdInline(on bool) {
	q.mu.Lock()
	q.readerBatch = on
	owed := q.readerOwes && !on
	q.readerOwes = q.readerOwes && on
	q.mu.Unlock()
	if owed {
		q.writeNow()
	}
}

// replyBatches lets the readers of plugins' answers (launch.BatchHooks)
// write the replies a batch of answers causes themselves, at the batch's
// end: each connection's replies in one system call, and no writer
// goroutine woken when the socket takes them. While any reader is inside
// a batch, a reply queued by any goroutine waits for the end of one; each
// end writes all that wait.
type replyBatches struct {
	mu      sync.Mutex
	open    int // readers inside a batch
	waiting []*replyQueue
	spare   []*replyQueue
}

// hooks are the launch.BatchHooks that open and end a batch; none for nil.
func (b *replyBatches) hooks() launch.BatchHooks {
	if b == nil {
		return launch.BatchHooks{}
	}
	return launch.BatchHooks{Begin: b.begin, End: b.end}
}

func (b *replyBatches) begin() {
	b.mu.Lock()
	b.open++
	b.mu.Unlock()
}

func (b *replyBatches) end() {
	b.mu.Lock()
	b.open--
	waiting := b.waiting
	b.waiting, b.spare = b.spare[:0], nil
	b.mu.Unlock()
	for i, q := range waiting {
		q.writeNow()
		waiting[i] = nil
	}
	b.mu.Lock()
	if b.spare == nil {
		b.spare = waiting[:0]
	}
	b.mu.Unlock()
}

// hold leaves q's writing to the end of a batch, if one is open: q has
// its writing flag and is written by that end.
func (b *replyBatches) hold(q *replyQueue) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open == 0 {
		return false
	}
	b.waiting = append(b.waiting, q)
	return true
}

// control queues a control frame; false once the connection is closing.
// A close frame is the last frame queued.
func (q *replyQueue) control(op byte, payload []byte) bool {
	q.mu.Lock()
	if q.closing || q.closed {
		q.mu.Unlock()
		return false
	}
	q.held += frameSize(len(payload))
	q.appendLocked(op, payload, false)
	q.closing = op == opClose
	start := q.startLocked()
	q.mu.Unlock()
	if start {
		go q.flush(nil, false)
	}
	return true
}

func (q *replyQueue) appendLocked(op byte, payload []byte, counted bool) {
	if q.out == nil {
		q.out = getBuf()
	}
	q.out = appendFrame(q.out, op, payload)
	if counted {
		q.outReplies++
	}
}

func (q *replyQueue) startLocked() bool {
	if q.writing || len(q.out) == 0 {
		return false
	}
	q.writing = true
	return true
}

// takeLocked takes what is queued for writing, which begins now: the
// requests it answers free their slots.
func (q *replyQueue) takeLocked() []byte {
	buf := q.out
	q.out = nil
	q.inflight -= q.outReplies
	q.outReplies = 0
	if len(q.outWritten) > 0 {
		now := taskproto.Monotonic()
		for _, at := range q.outWritten {
			wsproto.PatchWritten(buf[at:], now)
		}
		q.outWritten = q.outWritten[:0]
	}
	return buf
}

// writeNow writes what is queued from the goroutine that queued it, as far
// as the socket takes it without waiting; a writer goroutine takes over
// only what is left.
func (q *replyQueue) writeNow() {
	q.mu.Lock()
	buf := q.takeLocked()
	q.mu.Unlock()
	n, held := q.c.raw.tryWrite(buf)
	q.mu.Lock()
	q.held -= n
	if n == len(buf) && (len(q.out) == 0 || q.closed) {
		q.stopLocked()
		q.mu.Unlock()
		putBuf(buf)
		return
	}
	rest := buf
	if n < len(buf) {
		rest = append(getBuf(), buf[n:]...)
	}
	q.mu.Unlock()
	if n < len(buf) {
		putBuf(buf)
	} else {
		putBuf(rest)
		rest = nil
	}
	go q.flush(rest, held)
}

// flush writes rest (what writeNow left, with the connection's lock if
// held), then what is queued, and what is queued meanwhile; then it ends.
func (q *replyQueue) flush(buf []byte, held bool) {
	for {
		if buf != nil && !q.writeOut(buf, held) {
			return
		}
		held = false
		q.mu.Lock()
		if len(q.out) == 0 || q.closed {
			q.stopLocked()
			q.mu.Unlock()
			return
		}
		buf = q.takeLocked()
		q.mu.Unlock()
	}
}

// writeOut writes one batch under a deadline its size sets, and reports
// whether the connection is still good.
func (q *replyQueue) writeOut(buf []byte, held bool) bool {
	n := len(buf)
	wait := max(minWriteWait, time.Duration(float64(n)/float64(q.c.srv.opt.MinReplyReadRate)*float64(time.Second)))
	dl := time.Now().Add(wait)
	var err error
	if held {
		err = q.c.raw.writeHeld(buf, dl)
	} else {
		err = q.c.raw.writeBatch(buf, dl)
	}
	q.mu.Lock()
	q.held -= n
	q.mu.Unlock()
	putBuf(buf)
	if err != nil {
		q.writeFailed(err, n, wait)
		return false
	}
	return true
}

// stopLocked ends the writer.
func (q *replyQueue) stopLocked() {
	q.writing = false
	if q.out != nil && len(q.out) == 0 {
		putBuf(q.out)
		q.out = nil
	}
	if q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
}

func (q *replyQueue) writeFailed(err error, n int, wait time.Duration) {
	q.mu.Lock()
	wasClosed := q.closed
	q.closed = true
	q.stopLocked()
	q.mu.Unlock()
	var ne net.Error
	if !wasClosed && errors.As(err, &ne) && ne.Timeout() {
		q.c.closingFor(telemetry.ClosedNotReading)
		q.c.srv.log.Warn("closing a connection that reads its replies slower than min_reply_read_rate",
			"conn", q.c.id, "remote", q.c.ws.RemoteAddr().String(), "bytes", n, "in", wait, "min_reply_read_rate", q.c.srv.opt.MinReplyReadRate)
	} else {
		q.c.srv.log.Debug("write failed, closing connection", "conn", q.c.id, "remote", q.c.ws.RemoteAddr().String(), "error", err)
	}
	q.c.raw.Close() // the reader sees it and ends the connection
}

// abort closes a connection that broke its bounds: a blocked write is cut
// short, a close frame is tried, and the socket is closed.
func (q *replyQueue) abort(code int, reason string) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed, q.closing = true, true
	pending := q.held
	q.mu.Unlock()
	q.c.closingFor(telemetry.ClosedNotReading)
	q.c.srv.log.Warn("closing a connection that does not read its replies",
		"conn", q.c.id, "remote", q.c.ws.RemoteAddr().String(), "pending_bytes", pending, "close_code", code, "reason", reason)
	go func() {
		q.c.raw.Conn.SetWriteDeadline(time.Now()) // cuts a blocked write short
		q.c.raw.writeBatch(appendFrame(nil, opClose, closePayload(code, reason)), time.Now().Add(100*time.Millisecond))
		q.c.raw.Close()
	}()
}

// closeAfter waits up to d for the writer to write what is queued, then
// stops all writing.
func (q *replyQueue) closeAfter(d time.Duration) {
	q.mu.Lock()
	var idle chan struct{}
	if q.writing && !q.closed {
		idle = make(chan struct{})
		q.idle = idle
	}
	q.mu.Unlock()
	if idle != nil {
		t := time.NewTimer(d)
		select {
		case <-idle:
		case <-t.C:
		}
		t.Stop()
	}
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

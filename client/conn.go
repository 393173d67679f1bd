package client

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// entry is a request sent and not yet answered.
type entry struct {
	tok      int32 // index into plan.tokens
	intended int64 // latency is measured from here (ns since the run began)
	sent     int64 // the reply timeout is measured from here
}

// stopReason says why a connection stopped sending or draining.
type stopReason int

const (
	stopDone      stopReason = iota // its work is done
	stopCancelled                   // the run's context was cancelled
	stopFailed                      // the connection broke
	stopTimeout                     // a reply did not come within ReplyTimeout
	stopDeadline                    // open loop: the drain after the run's end ran out
)

// Per-connection limits on kept samples.
const maxSamplesPerConn = 3

// conn is one client connection. Two goroutines work on it: the sender
// (conn.run, which owns it and everything it starts) and the reader
// (readLoop). Fields are owned by one of them unless guarded by mu.
type conn struct {
	r     *run
	id    int
	ws    *websocket.Conn
	shard *shard

	framePrefix []byte // `{"id":"c12-`
	idPrefix    []byte // `"c12-`, how the reply's id starts
	frame       []byte // the sender's frame buffer

	mu      sync.Mutex
	pending map[uint64]entry // by sequence number
	nextSeq uint64
	lowSeq  uint64 // no pending entry below it
	// abandoned says what is pending was counted missing: a late reply to
	// it is ignored, any other reply is still checked.
	abandoned bool

	slots      chan struct{} // one token per request in flight
	wake       chan struct{} // a reply came or work was queued
	readerDone chan struct{}
	closing    atomic.Bool // we are closing: read errors are expected
	failed     atomic.Bool
	failure    string       // why it failed; written by whoever set failed
	replies    atomic.Int64 // written by the reader, read by the progress bar

	// Owned by the sender.
	k         int // requests taken from the task sequence
	sent      int64
	unsent    int64
	missing   int64
	completed bool
	took      time.Duration
	note      string // a reply timeout

	// Owned by the reader.
	ok, wrong    int64
	errors       map[string]int64
	wrongSamples []string
	rec          []record
	dec          wireReply
	timings      timings
}

func newConn(r *run, id int, sh *shard) *conn {
	return &conn{
		r:           r,
		id:          id,
		shard:       sh,
		framePrefix: []byte(`{"id":"c` + strconv.Itoa(id) + "-"),
		idPrefix:    []byte(`"c` + strconv.Itoa(id) + "-"),
		pending:     make(map[uint64]entry, min(r.p.opt.Pipeline, 1024)),
		slots:       make(chan struct{}, r.p.opt.Pipeline),
		wake:        make(chan struct{}, 1),
		readerDone:  make(chan struct{}),
		errors:      map[string]int64{},
		rec:         make([]record, 0, recBatch),
	}
}
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// fail records the connection's first failure.
func (c *conn) fail(format string, args ...any) {
	if c.failed.CompareAndSwap(false, true) {
		c.failure = fmt.Sprintf("client %d: ", c.id) + fmt.Sprintf(format, args...)
	}
}

// run is the connection's life: wait its turn in the ramp-up, dial, send,
// drain, close. It returns once the reader it started has stopped.
func (c *conn) run(ctx context.Context) {
	if !c.waitTurn(ctx) {
		return
	}
	start := c.r.now()
	ws, err := c.r.dial(ctx)
	c.r.dialDone()
	if err != nil {
		if ctx.Err() != nil {
			c.r.interrupted.Store(true)
			return
		}
		c.fail("dial %s: %v", c.r.p.opt.URL, err)
		c.countUnsent(ctx)
		c.r.verbosef("client %d failed after %.3f s: %v\n", c.id, time.Duration(c.r.now()-start).Seconds(), err)
		return
	}
	c.ws = ws
	go c.readLoop()

	reason := c.waitStart(ctx)
	if reason == stopDone {
		reason = c.sendLoop(ctx)
	}
	reason = c.drain(ctx, reason)
	c.took = time.Duration(c.r.now() - start)
	c.abandon(reason)
	if reason != stopCancelled {
		c.countUnsent(ctx)
	}
	c.closeConn()
	c.shard.add(c.rec)
	c.rec = c.rec[:0]

	switch {
	case c.completed:
		c.r.verbosef("client %d took %.3f s\n", c.id, c.took.Seconds())
	case reason == stopCancelled:
		c.r.verbosef("client %d interrupted after %.3f s\n", c.id, c.took.Seconds())
	default:
		c.r.verbosef("client %d failed after %.3f s\n", c.id, c.took.Seconds())
	}
}

// waitTurn waits for the connection's turn in the ramp-up. It reports
// false when the run was cancelled first.
func (c *conn) waitTurn(ctx context.Context) bool {
	d := c.r.rampDelay(c.id)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		c.r.interrupted.Store(true)
		c.r.dialDone() // no dial will follow: the schedule must not wait for it
		return false
	}
}

// countUnsent counts what was due and will not be sent: the rest of the
// sequence or, in open loop, the rest of the connection's share of the
// schedule. The schedule starts once every connection has been dialled,
// which bounds the wait for it.
func (c *conn) countUnsent(ctx context.Context) {
	switch c.r.p.mode {
	case ModeSequence:
		c.unsent += int64(len(c.r.p.tokens) - c.k)
	case ModeRate:
		select {
		case <-c.r.started:
			c.unsent += c.r.scheduled(c.next())
		case <-ctx.Done():
		}
	}
}

// waitStart waits, in open loop, for the schedule to start.
func (c *conn) waitStart(ctx context.Context) stopReason {
	if c.r.p.mode != ModeRate {
		return stopDone
	}
	select {
	case <-c.r.started:
		return stopDone
	case <-c.readerDone:
		return stopFailed
	case <-ctx.Done():
		c.r.interrupted.Store(true)
		return stopCancelled
	}
}

// drain waits for the replies still outstanding.
func (c *conn) drain(ctx context.Context, reason stopReason) stopReason {
	if reason != stopDone && reason != stopCancelled {
		return reason
	}
	r := c.r
	tick := time.NewTicker(r.tick)
	defer tick.Stop()
	done := ctx.Done()
	var graceC, deadlineC <-chan time.Time
	grace := func() {
		t := time.NewTimer(min(r.p.opt.ReplyTimeout, cancelGrace))
		graceC, done = t.C, nil
		reason = stopCancelled
	}
	if reason == stopCancelled {
		grace()
	} else if r.p.mode == ModeRate {
		t := time.NewTimer(time.Duration(r.drainAt - r.now()))
		defer t.Stop()
		deadlineC = t.C
	}
	for {
		if c.pendingCount() == 0 {
			return reason
		}
		select {
		case <-c.wake:
		case <-tick.C:
			if c.expired() {
				return stopTimeout
			}
		case <-graceC:
			return stopCancelled
		case <-deadlineC:
			return stopDeadline
		case <-c.readerDone:
			return stopFailed
		case <-done:
			r.interrupted.Store(true)
			grace()
		}
	}
}

// cancelGrace is how long a cancelled run waits for outstanding replies.
const cancelGrace = time.Second

// closeWait bounds the closing handshake.
const closeWait = time.Second

// abandon ends the wait for replies: what is still pending is missing.
func (c *conn) abandon(reason stopReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abandoned = true
	c.missing = int64(len(c.pending))
	c.completed = reason == stopDone && c.missing == 0 && !c.failed.Load()
}

// closeConn closes the connection with status 1000 and waits for the reader.
func (c *conn) closeConn() {
	c.closing.Store(true)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
	t := time.NewTimer(closeWait)
	select {
	case <-c.readerDone:
	case <-t.C:
	}
	t.Stop()
	c.ws.Close()
	<-c.readerDone
}
func (c *conn) pendingCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// oldestLocked returns the oldest pending request.
func (c *conn) oldestLocked() (uint64, entry, bool) {
	for c.lowSeq < c.nextSeq {
		if e, ok := c.pending[c.lowSeq]; ok {
			return c.lowSeq, e, true
		}
		c.lowSeq++
	}
	return 0, entry{}, false
}

// expired reports whether the oldest pending request has waited longer than
// ReplyTimeout for its reply, and notes it.
func (c *conn) expired() bool {
	now := c.r.now()
	c.mu.Lock()
	seq, e, ok := c.oldestLocked()
	c.mu.Unlock()
	if !ok || time.Duration(now-e.sent) < c.r.p.opt.ReplyTimeout {
		return false
	}
	c.note = fmt.Sprintf("client %d: no reply to request c%d-%d (%s) within %v",
		c.id, c.id, seq, c.r.p.tokens[e.tok].name, c.r.p.opt.ReplyTimeout)
	return true
}

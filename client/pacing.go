package client

// Pacing: when each request of a connection is sent, and how its frame is built.

import (
	"context"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// next is, in open loop, the connection's next request in the schedule:
// the schedule deals its requests to the connections in turn.
func (c *conn) next() int64 {
	return int64(c.id) + int64(c.k)*int64(c.r.p.opt.Clients)
}

// sendLoop sends requests as its mode says until its work is done or it
// must stop.
func (c *conn) sendLoop(ctx context.Context) stopReason {
	r := c.r
	tick := time.NewTicker(r.tick)
	defer tick.Stop()
	var endC, deadlineC <-chan time.Time
	var due *time.Timer // open loop: the next request's due time
	switch r.p.mode {
	case ModeDuration:
		t := time.NewTimer(time.Duration(r.endAt - r.now()))
		defer t.Stop()
		endC = t.C
	case ModeRate:
		t := time.NewTimer(time.Duration(r.drainAt - r.now()))
		defer t.Stop()
		deadlineC = t.C
		due = time.NewTimer(time.Hour)
		defer due.Stop()
	}
	ended := false
	for {
		var slotC chan struct{}
		var dueC <-chan time.Time
		switch r.p.mode {
		case ModeSequence:
			if c.k >= len(r.p.tokens) {
				return stopDone
			}
			slotC = c.slots
		case ModeDuration:
			if ended || r.now() >= r.endAt {
				return stopDone
			}
			slotC = c.slots
		case ModeRate:
			g := c.next()
			if g >= r.schedN {
				return stopDone
			}
			if wait := r.due(g) - r.now(); wait <= 0 {
				slotC = c.slots
			} else {
				due.Reset(time.Duration(wait))
				dueC = due.C
			}
		}
		select {
		case slotC <- struct{}{}:
			if !c.sendNext() {
				return stopFailed
			}
		case <-dueC:
		case <-endC:
			ended = true
		case <-deadlineC:
			return stopDeadline
		case <-tick.C:
			if c.expired() {
				return stopTimeout
			}
		case <-c.readerDone:
			return stopFailed
		case <-ctx.Done():
			r.interrupted.Store(true)
			return stopCancelled
		}
	}
}

// sendNext sends the next request of the sequence; the caller holds a slot.
func (c *conn) sendNext() bool {
	seq, tokIdx := c.register(c.r.now())
	frame := c.buildFrame(seq, &c.r.p.tokens[tokIdx])
	c.ws.SetWriteDeadline(time.Now().Add(c.r.p.opt.ReplyTimeout))
	err := c.ws.WriteMessage(websocket.TextMessage, frame)
	if err == nil {
		c.sent++
		return true
	}
	c.mu.Lock()
	_, still := c.pending[seq]
	delete(c.pending, seq)
	c.mu.Unlock()
	if still {
		<-c.slots
		c.unsent++
	}
	c.fail("send: %v", err)
	return false
}

// register takes the next request of the sequence (and, in open loop, of
// the schedule) and records it as pending, sent at now.
func (c *conn) register(now int64) (seq uint64, tokIdx int) {
	intended := now
	if c.r.p.mode == ModeRate {
		intended = c.r.due(c.next())
	}
	tokIdx = c.k % len(c.r.p.tokens)
	c.k++
	c.mu.Lock()
	seq = c.nextSeq
	c.nextSeq++
	c.pending[seq] = entry{tok: int32(tokIdx), intended: intended, sent: now}
	c.mu.Unlock()
	return seq, tokIdx
}
func (c *conn) buildFrame(seq uint64, t *token) []byte {
	if !c.r.p.json {
		return t.plain
	}
	b := append(c.frame[:0], c.framePrefix...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, t.jsonTail...)
	c.frame = b
	return b
}

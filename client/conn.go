package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

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

// next is, in open loop, the connection's next request in the schedule:
// the schedule deals its requests to the connections in turn.
func (c *conn) next() int64 {
	return int64(c.id) + int64(c.k)*int64(c.r.p.opt.Clients)
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

// readLoop reads replies until the connection ends.
func (c *conn) readLoop() {
	defer close(c.readerDone)
	var buf bytes.Buffer
	for {
		mt, rd, err := c.ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			if !c.closing.Load() {
				c.fail("connection lost: %v", err)
			}
			return
		}
		now := c.r.now()
		if mt != websocket.TextMessage {
			// It answers no request: the host replies in text.
			c.replies.Add(1)
			c.addWrong("a binary frame of %d bytes", buf.Len())
			continue
		}
		if c.handleReply(buf.Bytes(), now) {
			<-c.slots
			poke(c.wake)
		}
	}
}

// wireReply is the part of a JSON reply the client reads. Decoding reuses
// its buffers: reset points the optional fields at sentinels, so that a
// field absent from the reply can be told from a zero.
type wireReply struct {
	ID      json.RawMessage `json:"id"`
	OK      bool            `json:"ok"`
	Result  json.RawMessage `json:"result"`
	QueueUS *int64          `json:"queue_us"`
	RunUS   *int64          `json:"run_us"`
	Error   *wireError      `json:"error"`

	q, r int64
	e    wireError
}

type wireError struct {
	Code string `json:"code"`
}

func (w *wireReply) reset() {
	w.ID, w.OK, w.Result = w.ID[:0], false, w.Result[:0]
	w.q, w.r, w.e.Code = -1, -1, ""
	w.QueueUS, w.RunUS, w.Error = &w.q, &w.r, &w.e
}

// handleReply checks one reply frame received at now and records it. It
// reports whether the reply answered a request still awaited (freeing its
// slot). A late reply to a request counted missing is ignored.
func (c *conn) handleReply(data []byte, now int64) bool {
	if c.r.p.json {
		return c.handleJSON(data, now)
	}
	return c.handlePlain(data, now)
}

func (c *conn) handlePlain(data []byte, now int64) bool {
	c.mu.Lock()
	seq, e, ok := c.oldestLocked()
	if ok {
		delete(c.pending, seq)
	}
	late := ok && c.abandoned
	c.mu.Unlock()
	if late {
		return false
	}
	c.replies.Add(1)
	if !ok {
		c.addWrong("unexpected reply %s with no request outstanding", clipQuote(data))
		return false
	}
	t := &c.r.p.tokens[e.tok]
	switch {
	case string(data) == t.expect:
		c.ok++
		c.record(t.kind, now-e.intended, -1, -1, -1)
	case bytes.HasPrefix(data, []byte("error:")):
		c.addError(plainErrorCode(data))
	default:
		c.addWrong("%s: got %s, want %s", t.name, clipQuote(data), clipQuote([]byte(t.expect)))
	}
	return true
}

func (c *conn) handleJSON(data []byte, now int64) bool {
	d := &c.dec
	d.reset()
	err := json.Unmarshal(data, d)
	c.mu.Lock()
	var (
		seq   uint64
		e     entry
		found bool
	)
	idOK := err == nil
	if idOK {
		seq, idOK = c.parseID(d.ID)
	}
	if idOK {
		e, found = c.pending[seq]
		if found {
			delete(c.pending, seq)
		}
	}
	late := found && c.abandoned
	next := c.nextSeq
	c.mu.Unlock()
	if late {
		return false
	}
	c.replies.Add(1)
	switch {
	case err != nil:
		c.addWrong("a reply that is not a JSON reply (%v): %s", err, clipQuote(data))
		return false
	case !found && idOK && seq < next:
		c.addWrong("a second reply for id c%d-%d: %s", c.id, seq, clipJSON(data))
		return false
	case !found:
		c.addWrong("a reply with an id never sent on this connection: %s", clipJSON(data))
		return false
	}
	t := &c.r.p.tokens[e.tok]
	if !d.OK {
		code := "unknown"
		if d.Error != nil && d.Error.Code != "" {
			code = d.Error.Code
		}
		c.addError(code)
		return true
	}
	if !bytes.Equal(d.Result, t.expectJSON) {
		var s string
		if json.Unmarshal(d.Result, &s) != nil || s != t.expect {
			c.addWrong("%s (id c%d-%d): got %s, want %s", t.name, c.id, seq, clipJSON(d.Result), clipJSON(t.expectJSON))
			return true
		}
	}
	c.ok++
	q, r := int64(-1), int64(-1)
	if d.QueueUS != nil {
		q = *d.QueueUS
	}
	if d.RunUS != nil {
		r = *d.RunUS
	}
	lag := int64(-1)
	if c.r.p.mode == ModeRate {
		lag = (e.sent - e.intended) / 1000
	}
	c.record(t.kind, now-e.intended, q, r, lag)
	return true
}

// parseID reads the sequence number from this connection's id `"c12-345"`.
func (c *conn) parseID(raw []byte) (uint64, bool) {
	n := len(raw)
	if n > len(c.idPrefix)+1 && bytes.HasPrefix(raw, c.idPrefix) && raw[n-1] == '"' {
		if seq, ok := parseUint(raw[len(c.idPrefix) : n-1]); ok {
			return seq, true
		}
	}
	// Not as sent, perhaps escaped: decode it properly (the slow path).
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	rest, ok := bytes.CutPrefix([]byte(s), c.idPrefix[1:])
	if !ok {
		return 0, false
	}
	return parseUint(rest)
}

func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + uint64(ch-'0')
	}
	return v, true
}

// plainErrorCode reads the code of a plain-text error reply,
// "error: <code>: <message>".
func plainErrorCode(data []byte) string {
	rest := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("error:")))
	code, _, found := bytes.Cut(rest, []byte(":"))
	if !found || len(code) == 0 || len(code) > 32 {
		return "unknown"
	}
	for _, ch := range code {
		if (ch < 'a' || ch > 'z') && ch != '_' {
			return "unknown"
		}
	}
	return string(code)
}

func (c *conn) record(kind int, latNS, queueUS, runUS, lagUS int64) {
	c.rec = append(c.rec, record{kind: uint8(kind), lat: latNS / 1000, queue: queueUS, run: runUS, lag: lagUS})
	if len(c.rec) == cap(c.rec) {
		c.shard.add(c.rec)
		c.rec = c.rec[:0]
	}
}

func (c *conn) addError(code string) {
	c.errors[code]++
}

func (c *conn) addWrong(format string, args ...any) {
	c.wrong++
	if len(c.wrongSamples) < maxSamplesPerConn {
		c.wrongSamples = append(c.wrongSamples, fmt.Sprintf("client %d: ", c.id)+fmt.Sprintf(format, args...))
	}
}

// clipJSON shortens valid JSON for a sample.
func clipJSON(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	head, more := clip(b, 120)
	return string(head) + more
}

// clipQuote quotes reply text for a sample, shortened.
func clipQuote(b []byte) string {
	head, more := clip(b, 80)
	return strconv.Quote(string(head)) + more
}

// clip cuts b to at most limit bytes, on a rune boundary so that a sample
// shows no broken character; more then says how long b was.
func clip(b []byte, limit int) (head []byte, more string) {
	if len(b) <= limit {
		return b, ""
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return b[:cut], fmt.Sprintf("... (%d bytes)", len(b))
}

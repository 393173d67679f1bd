package client

// Checking: every reply read, matched to its request and checked against the expected value.

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/gorilla/websocket"
)

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
	ID      json.RawMessage  `json:"id"`
	OK      bool             `json:"ok"`
	Result  json.RawMessage  `json:"result"`
	QueueUS *int64           `json:"queue_us"`
	RunUS   *int64           `json:"run_us"`
	Error   *wireError       `json:"error"`
	Timing  map[string]int64 `json:"timing"`

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
	w.Timing = nil
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
	if d.Timing != nil {
		c.timings.add(timelineOf(t.kind, d.Timing, c.r.mono+e.sent, c.r.mono+now))
	}
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

package client

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// testConn builds a connection with no network behind it, for checking
// replies in-process.
func testConn(t testing.TB, o Options) (*run, *conn) {
	t.Helper()
	p, err := newPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	r := newRun(p)
	r.base = time.Now()
	return r, r.conns[0]
}

// send registers the next request of c's sequence as sent and returns its id.
func send(c *conn) string {
	seq, _ := c.register(c.r.now())
	return fmt.Sprintf("c%d-%d", c.id, seq)
}

func jsonOptions(tasks ...string) Options {
	o := baseOptions()
	o.Protocol, o.Pipeline, o.Tasks = "json", 8, tasks
	return o
}

func TestPlainReplies(t *testing.T) {
	_, c := testConn(t, baseOptions()) // fib, cpu, io
	fib := Fib(5000).String()

	send(c)
	if !c.handleReply([]byte(fib), c.r.now()) {
		t.Fatal("right fib reply did not match a pending request")
	}
	send(c)
	c.handleReply([]byte("42"), c.r.now()) // cpu answered wrongly
	send(c)
	c.handleReply([]byte("error: overloaded: host has 10000 tasks queued"), c.r.now())
	if c.handleReply([]byte("1000000"), c.r.now()) {
		t.Error("a reply with no request outstanding matched")
	}
	if c.ok != 1 || c.wrong != 2 || c.replies.Load() != 4 || c.errors["overloaded"] != 1 {
		t.Errorf("ok %d wrong %d replies %d errors %v", c.ok, c.wrong, c.replies.Load(), c.errors)
	}
	if len(c.wrongSamples) != 2 || !strings.Contains(c.wrongSamples[0], `cpu: got "42", want "499999500000"`) {
		t.Errorf("samples %q", c.wrongSamples)
	}
	if len(c.rec) != 1 || c.rec[0].kind != kindFib || c.rec[0].queue != -1 {
		t.Errorf("records %+v", c.rec)
	}
	if c.pendingCount() != 0 {
		t.Errorf("pending %d", c.pendingCount())
	}
}

func TestPlainErrorCode(t *testing.T) {
	for in, want := range map[string]string{
		"error: unknown_task: unknown request \"x\"": "unknown_task",
		"error: out_of_range: sleep of 9 seconds":    "out_of_range",
		"error:timeout: ran past":                    "timeout",
		"error: something odd":                       "unknown",
		"error: Not A Code: x":                       "unknown",
	} {
		if got := plainErrorCode([]byte(in)); got != want {
			t.Errorf("plainErrorCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJSONReplies(t *testing.T) {
	_, c := testConn(t, jsonOptions("cpu", "fib", "io", "cpu", "cpu", "io"))
	ids := make([]string, 6)
	for i := range ids {
		ids[i] = send(c)
	}
	fib := Fib(5000).String()
	replies := []struct {
		frame   string
		matched bool
	}{
		// Out of order, escaped id and result: still right.
		{`{"id":"` + ids[1] + `","task":"fib","ok":true,"result":"` + fib + `","strategy":"inproc","worker":"w1","queue_us":7,"run_us":900}`, true},
		{`{"id":"\u0063` + ids[0][1:] + `","task":"cpu","ok":true,"result":"\u0034` + "99999500000" + `","queue_us":3,"run_us":400}`, true},
		// Wrong result.
		{`{"id":"` + ids[2] + `","task":"io","ok":true,"result":"999"}`, true},
		// Error reply.
		{`{"id":"` + ids[3] + `","ok":false,"error":{"code":"timeout","message":"ran past"}}`, true},
		// A second reply for the same id.
		{`{"id":"` + ids[3] + `","ok":false,"error":{"code":"timeout","message":"ran past"}}`, false},
		// Ids never sent: another connection's, one beyond, a number, none.
		{`{"id":"c99-1","ok":true,"result":"1"}`, false},
		{`{"id":"c0-999","ok":true,"result":"1"}`, false},
		{`{"id":4,"ok":true,"result":"1"}`, false},
		{`{"ok":true,"result":"1"}`, false},
		// Not JSON at all.
		{`499999500000`, false},
		// ok without a result, and an error reply without its error object.
		{`{"id":"` + ids[4] + `","ok":true}`, true},
		{`{"id":"` + ids[5] + `","ok":false,"error":null}`, true},
	}
	for i, rp := range replies {
		if got := c.handleReply([]byte(rp.frame), c.r.now()); got != rp.matched {
			t.Errorf("reply %d %.60s: matched %v, want %v", i, rp.frame, got, rp.matched)
		}
	}
	if c.ok != 2 || c.wrong != 8 || c.replies.Load() != int64(len(replies)) {
		t.Errorf("ok %d wrong %d replies %d", c.ok, c.wrong, c.replies.Load())
	}
	if c.errors["timeout"] != 1 || c.errors["unknown"] != 1 {
		t.Errorf("errors %v", c.errors)
	}
	if len(c.wrongSamples) != maxSamplesPerConn || !strings.Contains(c.wrongSamples[0], `io (id c0-2): got "999", want "1000000"`) ||
		!strings.Contains(c.wrongSamples[1], "a second reply for id c0-3") || !strings.Contains(c.wrongSamples[2], "never sent") {
		t.Errorf("samples %q", c.wrongSamples)
	}
	if len(c.rec) != 2 || c.rec[0].queue != 7 || c.rec[0].run != 900 || c.rec[1].kind != kindCPU || c.rec[1].lag != -1 {
		t.Errorf("records %+v", c.rec)
	}
	if c.pendingCount() != 0 {
		t.Errorf("pending %d", c.pendingCount())
	}
}

func TestAbandonedRepliesIgnored(t *testing.T) {
	_, c := testConn(t, jsonOptions("noop"))
	id := send(c)
	send(c)
	c.abandon(stopTimeout)
	if c.missing != 2 {
		t.Fatalf("missing %d, want 2", c.missing)
	}
	if c.handleReply([]byte(`{"id":"`+id+`","ok":true,"result":""}`), c.r.now()) || c.replies.Load() != 0 || c.ok != 0 {
		t.Fatalf("a late reply was counted: replies %d ok %d", c.replies.Load(), c.ok)
	}
}

// TestLateReplies: once the wait is abandoned, the first late reply to a
// request counted missing is ignored, but a reply that answers nothing
// awaited (a duplicate, a second late reply) is still wrong.
func TestLateReplies(t *testing.T) {
	_, c := testConn(t, jsonOptions("noop"))
	answered, missing := send(c), send(c)
	reply := func(id string) []byte { return []byte(`{"id":"` + id + `","ok":true,"result":""}`) }
	if !c.handleReply(reply(answered), c.r.now()) {
		t.Fatal("the reply to a pending request did not match")
	}
	c.abandon(stopTimeout)
	if c.missing != 1 {
		t.Fatalf("missing %d, want 1", c.missing)
	}
	c.handleReply(reply(missing), c.r.now())  // late: ignored
	c.handleReply(reply(missing), c.r.now())  // a second reply
	c.handleReply(reply(answered), c.r.now()) // a duplicate
	if c.ok != 1 || c.wrong != 2 || c.replies.Load() != 3 {
		t.Errorf("ok %d wrong %d replies %d, want 1, 2, 3", c.ok, c.wrong, c.replies.Load())
	}

	_, c = testConn(t, baseOptions())
	send(c)
	c.abandon(stopTimeout)
	c.handleReply([]byte(Fib(5000).String()), c.r.now()) // late: ignored
	c.handleReply([]byte("499999500000"), c.r.now())     // nothing outstanding
	if c.ok != 0 || c.wrong != 1 || c.replies.Load() != 1 {
		t.Errorf("plain: ok %d wrong %d replies %d, want 0, 1, 1", c.ok, c.wrong, c.replies.Load())
	}
}

func TestExpired(t *testing.T) {
	o := jsonOptions("noop")
	o.ReplyTimeout = 20 * time.Millisecond
	_, c := testConn(t, o)
	send(c)
	if c.expired() {
		t.Fatal("expired at once")
	}
	time.Sleep(30 * time.Millisecond)
	if !c.expired() || !strings.Contains(c.note, "no reply to request c0-0 (noop) within 20ms") {
		t.Fatalf("not expired, note %q", c.note)
	}
}

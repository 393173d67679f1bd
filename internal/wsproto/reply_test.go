package wsproto

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wslab/wslab/taskproto"
)

var sampleResult = taskproto.Result{
	Value:  "2880067194370816120",
	Worker: "w3",
	Queue:  12 * time.Microsecond,
	Run:    9*time.Microsecond + 999*time.Nanosecond, // truncated to 9
}

func TestEncodeResultPlain(t *testing.T) {
	for _, v := range []string{"2880067194370816120", "Request done", "", "499999500000"} {
		res := sampleResult
		res.Value = v
		got := EncodeResult(Request{Task: taskproto.Task{Kind: taskproto.KindFib}}, "pool", res)
		if string(got) != v {
			t.Errorf("EncodeResult(plain, %q) = %q, want the bare value", v, got)
		}
	}
}

func TestEncodeErrorPlain(t *testing.T) {
	e := taskproto.Errorf(taskproto.CodeUnknownTask, "unknown request %q; send fib", "x")
	got := EncodeError(Request{}, e)
	want := `error: unknown_task: unknown request "x"; send fib`
	if string(got) != want {
		t.Errorf("EncodeError(plain) = %q, want %q", got, want)
	}
	if !strings.HasPrefix(string(got), "error: ") {
		t.Errorf("plain error reply %q does not start with \"error: \"", got)
	}
}

// decodeObject decodes a reply frame into its fields, failing on anything
// that is not one valid JSON object.
func decodeObject(t *testing.T, frame []byte) map[string]json.RawMessage {
	t.Helper()
	if !json.Valid(frame) {
		t.Fatalf("reply is not valid JSON: %q", frame)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(frame, &m); err != nil {
		t.Fatalf("reply %q is not a JSON object: %v", frame, err)
	}
	return m
}

func TestEncodeResultJSON(t *testing.T) {
	req := Request{JSON: true, ID: json.RawMessage(`"c7-3"`), Task: taskproto.Task{Kind: taskproto.KindFib, N: 90}}
	frame := EncodeResult(req, "multiproc", sampleResult)
	m := decodeObject(t, frame)
	want := map[string]string{
		"id":       `"c7-3"`,
		"task":     `"fib"`,
		"ok":       `true`,
		"result":   `"2880067194370816120"`,
		"strategy": `"multiproc"`,
		"worker":   `"w3"`,
		"queue_us": `12`,
		"run_us":   `9`,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("reply %s lacks %q", frame, k)
			continue
		}
		if string(got) != v {
			t.Errorf("reply field %s = %s, want %s", k, got, v)
		}
	}
	if _, ok := m["error"]; ok {
		t.Errorf("successful reply %s carries an error", frame)
	}
}

// Every successful reply carries every field, zero values included.
func TestEncodeResultJSONZeroFields(t *testing.T) {
	req := Request{JSON: true, Task: taskproto.Task{Kind: taskproto.KindNoop}}
	frame := EncodeResult(req, "inproc", taskproto.Result{Worker: "host"})
	m := decodeObject(t, frame)
	for _, k := range []string{"id", "task", "ok", "result", "strategy", "worker", "queue_us", "run_us"} {
		if _, ok := m[k]; !ok {
			t.Errorf("reply %s lacks %q", frame, k)
		}
	}
	for k, v := range map[string]string{"id": "null", "ok": "true", "result": `""`, "queue_us": "0", "run_us": "0"} {
		if got := string(m[k]); got != v {
			t.Errorf("reply field %s = %s, want %s", k, got, v)
		}
	}
}

// Every successful reply carries "strategy" and "worker", even empty.
func TestEncodeResultJSONEmptyNames(t *testing.T) {
	req := Request{JSON: true, Task: taskproto.Task{Kind: taskproto.KindNoop}}
	m := decodeObject(t, EncodeResult(req, "", taskproto.Result{}))
	var missing []string
	for _, k := range []string{"strategy", "worker"} {
		if _, ok := m[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("empty %v omitted from a successful reply", missing)
	}
}

// ids are echoed exactly as sent, strings and numbers alike.
func TestEncodeEchoesID(t *testing.T) {
	ids := []string{
		`"c7-3"`, `""`, `"a\"b\\c"`, `"\u00e9t\u00e9"`, `"été"`, `"日本"`, `"\ud83d\ude00"`, `"😀"`,
		`"tab\tnl\n"`, `"\/"`,
		`7`, `0`, `-0`, `-1.5`, `1e3`, `1E+3`, `2.50`, `123456789012345678901234567890`, `1e400`,
	}
	for _, id := range ids {
		req := Request{JSON: true, ID: json.RawMessage(id), Task: taskproto.Task{Kind: taskproto.KindCPU}}
		for name, frame := range map[string][]byte{
			"result": EncodeResult(req, "pool", sampleResult),
			"error":  EncodeError(req, taskproto.Errorf(taskproto.CodeTimeout, "too slow")),
		} {
			m := decodeObject(t, frame)
			if got := string(m["id"]); got != id {
				t.Errorf("%s reply for id %s echoes id %s: %s", name, id, got, frame)
			}
		}
	}
}

// Known bug (reported): json.Marshal HTML-escapes the RawMessage id, so an id
// containing <, > or & (or U+2028/U+2029) comes back as "\u003c" etc., which
// a client matching ids by their bytes (as the e2e load test does) cannot
// match. The test skips while the bug is present and enforces once fixed.
func TestEncodeEchoesIDWithHTMLCharacters(t *testing.T) {
	var known []string
	for _, id := range []string{`"a<b>c&d"`, "\"line\u2028sep\u2029\"", `"<script>"`} {
		req := Request{JSON: true, ID: json.RawMessage(id), Task: taskproto.Task{Kind: taskproto.KindNoop}}
		for _, frame := range [][]byte{
			EncodeResult(req, "pool", sampleResult),
			EncodeError(req, taskproto.Errorf(taskproto.CodeOverloaded, "busy")),
		} {
			got := string(decodeObject(t, frame)["id"])
			if got == id {
				continue
			}
			var a, b string
			if json.Unmarshal([]byte(got), &a) == nil && json.Unmarshal([]byte(id), &b) == nil && a == b {
				known = append(known, id+" -> "+got)
				continue
			}
			t.Errorf("id %s echoed as %s", id, got)
		}
	}
	if len(known) > 0 {
		t.Errorf("id not echoed byte for byte: %v", known)
	}
}

func TestEncodeErrorJSON(t *testing.T) {
	for _, tc := range []struct {
		name   string
		id     json.RawMessage
		wantID string
	}{
		{"string id", json.RawMessage(`"c7-3"`), `"c7-3"`},
		{"number id", json.RawMessage(`42`), `42`},
		{"no id", nil, `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{JSON: true, ID: tc.id, Task: taskproto.Task{Kind: taskproto.KindFib, N: 9999999}}
			e := taskproto.Errorf(taskproto.CodeOutOfRange, "fib n must be between 0 and 100000, got 9999999")
			frame := EncodeError(req, e)
			m := decodeObject(t, frame)
			if got := string(m["id"]); got != tc.wantID {
				t.Errorf("id = %s, want %s", got, tc.wantID)
			}
			if got := string(m["ok"]); got != "false" {
				t.Errorf("ok = %q, want false (reply %s)", got, frame)
			}
			var re map[string]json.RawMessage
			if err := json.Unmarshal(m["error"], &re); err != nil {
				t.Fatalf("error field %s: %v", m["error"], err)
			}
			if got := string(re["code"]); got != `"out_of_range"` {
				t.Errorf("error.code = %s", got)
			}
			if got := string(re["message"]); got != `"fib n must be between 0 and 100000, got 9999999"` {
				t.Errorf("error.message = %s", got)
			}
			if _, ok := m["result"]; ok {
				t.Errorf("error reply %s carries a result", frame)
			}
		})
	}
}

// An error reply for a request that was never parsed (binary frame, bad
// UTF-8) is still one valid JSON object.
func TestEncodeErrorJSONZeroRequest(t *testing.T) {
	frame := EncodeError(Request{JSON: true}, taskproto.Errorf(taskproto.CodeBadRequest, "frame is not valid UTF-8"))
	m := decodeObject(t, frame)
	if string(m["id"]) != "null" || string(m["ok"]) != "false" {
		t.Errorf("reply %s", frame)
	}
}

// Messages with odd characters still make a valid frame.
func TestEncodeErrorMessageEscaping(t *testing.T) {
	msg := "bad \"x\" \\ <tag> & \x01 \u2028 é 😀"
	e := taskproto.Errorf(taskproto.CodeBadRequest, "%s", msg)
	frame := EncodeError(Request{JSON: true, ID: json.RawMessage(`1`)}, e)
	var r Reply
	if err := json.Unmarshal(frame, &r); err != nil {
		t.Fatalf("decode %s: %v", frame, err)
	}
	if r.Error == nil || r.Error.Message != msg {
		t.Errorf("round-tripped error %+v, want message %q", r.Error, msg)
	}
	plain := EncodeError(Request{}, e)
	if !utf8.Valid(plain) || !bytes.HasSuffix(plain, []byte(msg)) {
		t.Errorf("plain error %q", plain)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	t.Run("result", func(t *testing.T) {
		req := Request{JSON: true, ID: json.RawMessage(`"r1"`), Task: taskproto.Task{Kind: taskproto.KindSleep, N: 5}}
		var r Reply
		if err := json.Unmarshal(EncodeResult(req, "semaphore", sampleResult), &r); err != nil {
			t.Fatal(err)
		}
		if string(r.ID) != `"r1"` || r.Task != "sleep" || !r.OK || r.Error != nil ||
			r.Result == nil || *r.Result != sampleResult.Value ||
			r.Strategy == nil || *r.Strategy != "semaphore" || r.Worker == nil || *r.Worker != "w3" ||
			r.QueueUS == nil || *r.QueueUS != 12 || r.RunUS == nil || *r.RunUS != 9 {
			t.Errorf("round trip: %+v", r)
		}
	})
	t.Run("error", func(t *testing.T) {
		req := Request{JSON: true, ID: json.RawMessage(`-3`), Task: taskproto.Task{Kind: taskproto.KindIO}}
		var r Reply
		if err := json.Unmarshal(EncodeError(req, taskproto.Errorf(taskproto.CodeExecutorFailed, "worker died")), &r); err != nil {
			t.Fatal(err)
		}
		if string(r.ID) != `-3` || r.OK || r.Result != nil || r.Error == nil ||
			r.Error.Code != taskproto.CodeExecutorFailed || r.Error.Message != "worker died" {
			t.Errorf("round trip: %+v (error %+v)", r, r.Error)
		}
	})
	t.Run("null id", func(t *testing.T) {
		var r Reply
		if err := json.Unmarshal(EncodeResult(Request{JSON: true, Task: taskproto.Task{Kind: taskproto.KindNoop}}, "inproc", taskproto.Result{}), &r); err != nil {
			t.Fatal(err)
		}
		// The client sees a JSON null id as the bytes "null".
		if string(r.ID) != "null" || !r.OK || r.Result == nil || *r.Result != "" {
			t.Errorf("round trip: %+v", r)
		}
	})
	t.Run("reencode", func(t *testing.T) {
		// A decoded Reply marshals back to the same frame.
		req := Request{JSON: true, ID: json.RawMessage(`7`), Task: taskproto.Task{Kind: taskproto.KindFib}}
		frame := EncodeResult(req, "pool", sampleResult)
		var r Reply
		if err := json.Unmarshal(frame, &r); err != nil {
			t.Fatal(err)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, frame) {
			t.Errorf("re-encoded %s, want %s", again, frame)
		}
	})
}

// Parse then encode: the reply to a parse error echoes the id the request had.
func TestParseErrorReplyEchoesID(t *testing.T) {
	req, perr := Parse([]byte(`{"id":"u9","task":"nope"}`), testDefaults)
	if perr == nil {
		t.Fatal("unknown task accepted")
	}
	var r Reply
	if err := json.Unmarshal(EncodeError(req, perr), &r); err != nil {
		t.Fatal(err)
	}
	if string(r.ID) != `"u9"` || r.OK || r.Error == nil || r.Error.Code != taskproto.CodeUnknownTask {
		t.Errorf("reply %+v", r)
	}
}

// The reply reserved for is never shorter than the reply written, for
// every kind at its largest.
func TestMaxReplySize(t *testing.T) {
	id := json.RawMessage(`"` + strings.Repeat("i", 1000) + `"`)
	for _, c := range []struct {
		task   taskproto.Task
		result string
	}{
		{taskproto.Task{Kind: taskproto.KindFib, N: 100000}, strings.Repeat("9", 20899)},
		{taskproto.Task{Kind: taskproto.KindFib, N: 0}, "0"},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 4_000_000_000}, "7999999998000000000"},
		{taskproto.Task{Kind: taskproto.KindIO, N: 1 << 40}, "1099511627776"},
		{taskproto.Task{Kind: taskproto.KindSleep, N: 1}, "Request done"},
		{taskproto.Task{Kind: taskproto.KindNoop}, ""},
	} {
		req := Request{JSON: true, ID: id, Task: c.task, Traceparent: "01-" + strings.Repeat("a", 125)}
		res := taskproto.Result{Value: c.result, Worker: "host-name.example:123456", Queue: time.Hour, Run: time.Hour}
		got := len(EncodeResult(req, "distributed", res))
		if max := MaxReplySize(req); got > max {
			t.Errorf("%+v: reply of %d bytes, reserved %d", c.task, got, max)
		}
		e := taskproto.Errorf(taskproto.CodeOutOfRange, "fib n must be between 0 and 100000, got 9223372036854775807; accepted: fib, cpu, io, sleep, noop")
		if got, max := len(EncodeError(req, e)), MaxReplySize(req); got > max {
			t.Errorf("%+v: error reply of %d bytes, reserved %d", c.task, got, max)
		}
	}
}

// A reply with a timeline is valid JSON before and after its write instant
// is patched in, and carries every stamp.
func TestAppendTiming(t *testing.T) {
	var tl taskproto.Timeline
	tl.StampAt(taskproto.StageHostRead, 100)
	tl.StampAt(taskproto.StageTaskStart, 250)
	req := Request{JSON: true, ID: json.RawMessage(`"a"`), Task: taskproto.Task{Kind: taskproto.KindNoop}, Timing: true}
	for _, frame := range [][]byte{
		AppendResult(nil, req, "pool", taskproto.Result{Worker: "g1"}),
		AppendError(nil, req, taskproto.Errorf(taskproto.CodeOverloaded, "busy")),
	} {
		out, at := AppendTiming(frame, &tl)
		var before Reply
		if err := json.Unmarshal(out, &before); err != nil {
			t.Fatalf("unpatched %s: %v", out, err)
		}
		PatchWritten(out[at:], 1234567890123456789)
		var r Reply
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("patched %s: %v", out, err)
		}
		want := map[string]int64{"host_read": 100, "task_start": 250, "reply_written": 1234567890123456789}
		if !reflect.DeepEqual(r.Timing, want) {
			t.Errorf("timing %v, want %v", r.Timing, want)
		}
		if len(out) > len(frame)+timingOverhead {
			t.Errorf("timeline adds %d bytes, more than timingOverhead", len(out)-len(frame))
		}
	}
}

// A reply echoes the trace context the request ran under.
func TestReplyEchoesTraceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req := Request{JSON: true, ID: json.RawMessage(`1`), Task: taskproto.Task{Kind: taskproto.KindNoop}, Traceparent: tp}
	for _, frame := range [][]byte{
		AppendResult(nil, req, "pool", taskproto.Result{}),
		AppendError(nil, req, taskproto.Errorf(taskproto.CodeOverloaded, "busy")),
	} {
		var r Reply
		if err := json.Unmarshal(frame, &r); err != nil {
			t.Fatalf("%s: %v", frame, err)
		}
		if r.Traceparent != tp {
			t.Errorf("%s: traceparent %q, want %q", frame, r.Traceparent, tp)
		}
	}
	if frame := AppendResult(nil, Request{JSON: true, Task: req.Task}, "pool", taskproto.Result{}); bytes.Contains(frame, []byte("traceparent")) {
		t.Errorf("a reply to a request without a trace context carries one: %s", frame)
	}
}

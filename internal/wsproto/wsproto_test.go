package wsproto

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// testDefaults deliberately differs from the config default (5000) so that a
// test notices when Parse ignores Defaults.
var testDefaults = Defaults{FibN: 4321}

// testLimits are the default limits with timeout_sec = 100.
var testLimits = taskproto.Limits{
	MaxFibN:    tasks.DefaultMaxFibN,
	MaxCPUN:    tasks.DefaultMaxCPUN,
	MaxIOBytes: tasks.DefaultMaxIOBytes,
	MaxSleep:   100 * time.Second,
}

// noID marks a case whose Request.ID must be nil.
const noID = "\x00nil"

type parseCase struct {
	name  string
	frame string

	wantJSON bool
	wantID   string // noID: nil; otherwise the exact bytes
	wantKind string // checked only when wantCode is ""
	wantN    int64  // checked only when wantCode is ""

	wantCode    taskproto.Code // "" means no error
	msgContains []string
}

var acceptedPlain = []string{"fib", "cpu", "io", "whole number"}
var acceptedJSON = []string{"fib", "cpu", "io", "sleep", "noop"}

func plainCases() []parseCase {
	return []parseCase{
		{name: "fib", frame: "fib", wantID: noID, wantKind: taskproto.KindFib, wantN: testDefaults.FibN},
		{name: "cpu", frame: "cpu", wantID: noID, wantKind: taskproto.KindCPU, wantN: 1_000_000},
		{name: "io", frame: "io", wantID: noID, wantKind: taskproto.KindIO, wantN: 1_000_000},
		{name: "trimmed", frame: " fib\n", wantID: noID, wantKind: taskproto.KindFib, wantN: testDefaults.FibN},
		{name: "trimmed tabs and CRLF", frame: "\tcpu\r\n", wantID: noID, wantKind: taskproto.KindCPU, wantN: 1_000_000},
		{name: "sleep 0", frame: "0", wantID: noID, wantKind: taskproto.KindSleep, wantN: 0},
		{name: "sleep 5", frame: "5", wantID: noID, wantKind: taskproto.KindSleep, wantN: 5000},
		{name: "sleep 007", frame: "007", wantID: noID, wantKind: taskproto.KindSleep, wantN: 7000},
		{name: "sleep trimmed", frame: " 3 \n", wantID: noID, wantKind: taskproto.KindSleep, wantN: 3000},
		// "99999999999999999999", "-1", ... are in TestParsePlainHuge and below.
		{name: "negative", frame: "-1", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "plus sign", frame: "+1", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "fraction", frame: "1.5", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "exponent", frame: "1e3", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "inner space", frame: "1 2", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "nope", frame: "nope", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: append([]string{"nope"}, acceptedPlain...)},
		{name: "empty", frame: "", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "blank", frame: " \n\t", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "upper case", frame: "FIB", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		// Only the JSON protocol knows sleep and noop by name.
		{name: "sleep by name", frame: "sleep", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "noop by name", frame: "noop", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "not an object", frame: "[1]", wantID: noID, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedPlain},
		{name: "invalid UTF-8", frame: "fib\xff", wantID: noID, wantCode: taskproto.CodeBadRequest, msgContains: []string{"UTF-8"}},
	}
}

func jsonCases() []parseCase {
	return []parseCase{
		{name: "spec example", frame: `{"id": "c7-3", "task": "fib", "n": 90}`, wantJSON: true, wantID: `"c7-3"`, wantKind: taskproto.KindFib, wantN: 90},
		{name: "numeric id", frame: `{"id":7,"task":"cpu"}`, wantJSON: true, wantID: `7`, wantKind: taskproto.KindCPU, wantN: 1_000_000},
		{name: "negative fractional id", frame: `{"id":-1.5,"task":"noop"}`, wantJSON: true, wantID: `-1.5`, wantKind: taskproto.KindNoop, wantN: 0},
		{name: "exponent id kept as sent", frame: `{"id":1E+3,"task":"noop"}`, wantJSON: true, wantID: `1E+3`, wantKind: taskproto.KindNoop},
		{name: "huge id kept as sent", frame: `{"id":123456789012345678901234567890,"task":"noop"}`, wantJSON: true, wantID: `123456789012345678901234567890`, wantKind: taskproto.KindNoop},
		{name: "escaped string id kept as sent", frame: `{"id":"a\"b\u00e9\\","task":"noop"}`, wantJSON: true, wantID: `"a\"b\u00e9\\"`, wantKind: taskproto.KindNoop},
		{name: "empty string id", frame: `{"id":"","task":"noop"}`, wantJSON: true, wantID: `""`, wantKind: taskproto.KindNoop},
		{name: "no id", frame: `{"task":"io"}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindIO, wantN: 1_000_000},
		{name: "empty object", frame: `{}`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest, msgContains: append([]string{"task"}, acceptedJSON...)},

		{name: "id null", frame: `{"id":null,"task":"fib"}`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest, msgContains: []string{"id"}},
		{name: "id true", frame: `{"id":true,"task":"fib"}`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest, msgContains: []string{"id"}},
		{name: "id object", frame: `{"id":{},"task":"fib"}`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest, msgContains: []string{"id"}},
		{name: "id array", frame: `{"id":[],"task":"fib"}`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest, msgContains: []string{"id"}},

		{name: "task missing", frame: `{"id":"x"}`, wantJSON: true, wantID: `"x"`, wantCode: taskproto.CodeBadRequest, msgContains: append([]string{"task"}, acceptedJSON...)},
		{name: "task number", frame: `{"id":"x","task":1}`, wantJSON: true, wantID: `"x"`, wantCode: taskproto.CodeBadRequest, msgContains: append([]string{"task"}, acceptedJSON...)},
		{name: "task null", frame: `{"id":"x","task":null}`, wantJSON: true, wantID: `"x"`, wantCode: taskproto.CodeBadRequest, msgContains: append([]string{"task"}, acceptedJSON...)},
		{name: "task array", frame: `{"id":"x","task":["fib"]}`, wantJSON: true, wantID: `"x"`, wantCode: taskproto.CodeBadRequest, msgContains: append([]string{"task"}, acceptedJSON...)},
		{name: "unknown task echoes id", frame: `{"id":"c1","task":"nope"}`, wantJSON: true, wantID: `"c1"`, wantCode: taskproto.CodeUnknownTask, msgContains: append([]string{"nope"}, acceptedJSON...)},
		{name: "unknown task numeric id", frame: `{"id":42,"task":"FIB"}`, wantJSON: true, wantID: `42`, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedJSON},
		{name: "empty task", frame: `{"id":42,"task":""}`, wantJSON: true, wantID: `42`, wantCode: taskproto.CodeUnknownTask, msgContains: acceptedJSON},

		{name: "n exponent", frame: `{"task":"cpu","n":1e6}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindCPU, wantN: 1_000_000},
		{name: "n exponent upper", frame: `{"task":"io","n":2E3}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindIO, wantN: 2000},
		{name: "n whole with point", frame: `{"task":"fib","n":10.0}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindFib, wantN: 10},
		{name: "n zero", frame: `{"task":"fib","n":0}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindFib, wantN: 0},
		{name: "n max int64", frame: `{"task":"fib","n":9223372036854775807}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindFib, wantN: 1<<63 - 1},
		// A negative n parses; tasks.Check refuses it (TestParseThenCheck).
		{name: "n negative", frame: `{"task":"sleep","n":-1}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindSleep, wantN: -1},
		{name: "n fraction", frame: `{"id":1,"task":"fib","n":1.5}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeBadRequest, msgContains: []string{"whole"}},
		{name: "n negative fraction", frame: `{"id":1,"task":"fib","n":-0.5}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeBadRequest, msgContains: []string{"whole"}},
		// Float rounding must not let fractions through as whole numbers.
		{name: "n tiny fraction underflows", frame: `{"id":1,"task":"fib","n":1e-400}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeBadRequest},
		{name: "n fraction rounds up", frame: `{"id":1,"task":"fib","n":99999.999999999999999}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeBadRequest},
		{name: "n string", frame: `{"id":1,"task":"sleep","n":"5"}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeBadRequest, msgContains: []string{"n"}},
		{name: "n bool", frame: `{"id":1,"task":"sleep","n":true}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeBadRequest, msgContains: []string{"n"}},
		{name: "n object", frame: `{"id":1,"task":"sleep","n":{}}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeBadRequest, msgContains: []string{"n"}},
		{name: "n 1e30", frame: `{"id":1,"task":"cpu","n":1e30}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeOutOfRange},
		{name: "n -1e30", frame: `{"id":1,"task":"cpu","n":-1e30}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeOutOfRange},
		{name: "n just past int64", frame: `{"id":1,"task":"cpu","n":9223372036854775808}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeOutOfRange},
		{name: "n 1e400", frame: `{"id":1,"task":"cpu","n":1e400}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeOutOfRange},
		{name: "n huge exponent", frame: `{"id":1,"task":"cpu","n":1e999999999}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeOutOfRange},
		{name: "n tiny exponent", frame: `{"id":1,"task":"cpu","n":1e-999999999}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeBadRequest},
		{name: "n negative huge exponent", frame: `{"id":1,"task":"cpu","n":-1e999999999}`, wantJSON: true, wantID: `1`, wantCode: taskproto.CodeOutOfRange},
		{name: "n null is default", frame: `{"task":"fib","n":null}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindFib, wantN: testDefaults.FibN},

		{name: "default fib", frame: `{"task":"fib"}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindFib, wantN: testDefaults.FibN},
		{name: "default cpu", frame: `{"task":"cpu"}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindCPU, wantN: 1_000_000},
		{name: "default io", frame: `{"task":"io"}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindIO, wantN: 1_000_000},
		{name: "default sleep", frame: `{"task":"sleep"}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindSleep, wantN: 1000},
		{name: "default noop", frame: `{"task":"noop"}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindNoop, wantN: 0},
		{name: "noop keeps n", frame: `{"task":"noop","n":3}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindNoop, wantN: 3},
		// JSON member names are case-sensitive; encoding/json matches them
		// case-insensitively.
		{name: "upper-case member names", frame: `{"TASK":"fib"}`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest},
		{name: "unknown fields ignored", frame: `{"task":"noop","extra":[1,{"a":2}]}`, wantJSON: true, wantID: noID, wantKind: taskproto.KindNoop},

		{name: "leading whitespace", frame: " \t\r\n{\"id\":\"w\",\"task\":\"sleep\",\"n\":5}", wantJSON: true, wantID: `"w"`, wantKind: taskproto.KindSleep, wantN: 5},
		{name: "trailing whitespace", frame: "{\"task\":\"noop\"}\n", wantJSON: true, wantID: noID, wantKind: taskproto.KindNoop},
		{name: "spaces inside", frame: `{ "id" : "s" , "task" : "cpu" , "n" : 10 }`, wantJSON: true, wantID: `"s"`, wantKind: taskproto.KindCPU, wantN: 10},
		{name: "trailing garbage", frame: `{"id":"t","task":"fib"}x`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest},
		{name: "two objects", frame: `{"task":"fib"}{"task":"cpu"}`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest},
		{name: "truncated", frame: `{"id":"t","task":"fib"`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest},
		{name: "lone brace", frame: `{`, wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest},
		{name: "invalid UTF-8 in JSON", frame: "{\"id\":\"\xff\",\"task\":\"fib\"}", wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest, msgContains: []string{"UTF-8"}},
		{name: "invalid UTF-8 after whitespace", frame: " {\"task\":\"fib\xc3\"}", wantJSON: true, wantID: noID, wantCode: taskproto.CodeBadRequest, msgContains: []string{"UTF-8"}},
	}
}

func TestParse(t *testing.T) {
	for _, group := range []struct {
		name  string
		cases []parseCase
	}{{"plain", plainCases()}, {"json", jsonCases()}} {
		t.Run(group.name, func(t *testing.T) {
			for _, tc := range group.cases {
				t.Run(tc.name, func(t *testing.T) {
					req, err := Parse([]byte(tc.frame), testDefaults)
					checkParse(t, tc, req, err)
				})
			}
		})
	}
}

func checkParse(t *testing.T, tc parseCase, req Request, err *taskproto.Error) {
	t.Helper()
	if req.JSON != tc.wantJSON {
		t.Errorf("Parse(%q).JSON = %v, want %v", tc.frame, req.JSON, tc.wantJSON)
	}
	if tc.wantID == noID {
		if req.ID != nil {
			t.Errorf("Parse(%q).ID = %q, want nil", tc.frame, req.ID)
		}
	} else if string(req.ID) != tc.wantID {
		t.Errorf("Parse(%q).ID = %q, want %q", tc.frame, req.ID, tc.wantID)
	}
	if tc.wantCode == "" {
		if err != nil {
			t.Fatalf("Parse(%q) error %v, want none", tc.frame, err)
		}
		if req.Task.Kind != tc.wantKind || req.Task.N != tc.wantN {
			t.Errorf("Parse(%q).Task = %+v, want {Kind:%s N:%d}", tc.frame, req.Task, tc.wantKind, tc.wantN)
		}
		return
	}
	if err == nil {
		t.Fatalf("Parse(%q) = %+v, want error %s", tc.frame, req, tc.wantCode)
	}
	if err.Code != tc.wantCode {
		t.Errorf("Parse(%q) error code %s (%q), want %s", tc.frame, err.Code, err.Message, tc.wantCode)
	}
	for _, s := range tc.msgContains {
		if !strings.Contains(err.Message, s) {
			t.Errorf("Parse(%q) error message %q does not mention %q", tc.frame, err.Message, s)
		}
	}
	if !utf8.ValidString(err.Message) {
		t.Errorf("Parse(%q) error message is not valid UTF-8: %q", tc.frame, err.Message)
	}
}

// The plain protocol's sleep in seconds can overflow int64 milliseconds; Parse
// must neither panic nor hand out a sleep that the host would run.
func TestParsePlainHuge(t *testing.T) {
	for _, frame := range []string{
		"99999999999999999999",
		"9223372036854775807",
		"9223372036854775808",
		"9223372036854776",  // *1000 overflows int64
		"18446744073709552", // *1000 wraps around to a small positive
		"4611686018",        // the largest second count Parse lets through
		"4611686019",        // and the smallest it refuses
		"101",               // beyond the default timeout_sec
		strings.Repeat("9", 1000),
		"0000000000000000000000000000000000000000005",
	} {
		t.Run(frame[:min(len(frame), 24)], func(t *testing.T) {
			req, err := Parse([]byte(frame), testDefaults)
			if req.JSON || req.ID != nil {
				t.Errorf("Parse(%q) = %+v, want a plain request without id", frame, req)
			}
			if err != nil {
				if err.Code != taskproto.CodeOutOfRange {
					t.Errorf("Parse(%q) error %v, want out_of_range", frame, err)
				}
				if len(err.Message) >= 200 {
					t.Errorf("Parse(%q) error message is %d bytes long", frame, len(err.Message))
				}
				return
			}
			if req.Task.Kind != taskproto.KindSleep {
				t.Fatalf("Parse(%q).Task = %+v, want a sleep", frame, req.Task)
			}
			if req.Task.N < 0 || req.Task.N%1000 != 0 {
				t.Errorf("Parse(%q).Task.N = %d, want a non-negative whole number of seconds in ms", frame, req.Task.N)
			}
			// Time for a sleep must not overflow time.Duration in tasks.Run.
			if d := time.Duration(req.Task.N) * time.Millisecond; d < 0 || d/time.Millisecond != time.Duration(req.Task.N) {
				t.Errorf("Parse(%q).Task.N = %d ms overflows time.Duration", frame, req.Task.N)
			}
			if frame == "0000000000000000000000000000000000000000005" {
				if req.Task.N != 5000 {
					t.Errorf("Parse(%q).Task.N = %d, want 5000", frame, req.Task.N)
				}
				return
			}
			if cerr := tasks.Check(req.Task, testLimits); cerr == nil {
				t.Errorf("Parse(%q).Task = %+v passes tasks.Check, want out_of_range", frame, req.Task)
			}
		})
	}
}

// TestParseThenCheck: what Parse accepts, tasks.Check refuses with
// out_of_range, never unknown_task, when it is beyond the limits.
func TestParseThenCheck(t *testing.T) {
	for _, tc := range []struct {
		frame  string
		wantOK bool
	}{
		{`{"task":"fib","n":100000}`, true},
		{`{"task":"fib","n":100001}`, false},
		{`{"task":"sleep","n":-1}`, false},
		{`{"task":"sleep","n":100000}`, true},
		{`{"task":"sleep","n":100001}`, false},
		{`{"task":"cpu","n":9223372036854775807}`, false},
		{`{"task":"io","n":1e8}`, true},
		{`{"task":"io","n":1e9}`, false},
		{`{"task":"noop","n":-5}`, true},
		{"100", true},
		{"101", false},
	} {
		req, perr := Parse([]byte(tc.frame), testDefaults)
		if perr != nil {
			t.Errorf("Parse(%q): %v", tc.frame, perr)
			continue
		}
		err := tasks.Check(req.Task, testLimits)
		if tc.wantOK {
			if err != nil {
				t.Errorf("Check(Parse(%q)) = %v, want nil", tc.frame, err)
			}
			continue
		}
		te, ok := err.(*taskproto.Error)
		if !ok || te.Code != taskproto.CodeOutOfRange {
			t.Errorf("Check(Parse(%q)) = %v, want out_of_range", tc.frame, err)
		}
	}
}

// Client text quoted back in error messages is clipped.
func TestParseClipsLongNames(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	multi := strings.Repeat("é", 5_000) // clipping must not split a rune
	for _, frame := range []string{
		long,
		multi,
		`{"id":1,"task":"` + long + `"}`,
		`{"id":1,"task":"` + multi + `"}`,
		`{"id":1,"task":"fib","n":` + strings.Repeat("9", 10_000) + `}`,
		`{"id":1,"task":"fib","n":0.` + strings.Repeat("5", 10_000) + `}`,
		`{"id":1,"task":"fib","n":` + strings.Repeat("9", 10_000) + `.5}`,
		strings.Repeat("9", 10_000),
	} {
		_, err := Parse([]byte(frame), testDefaults)
		if err == nil {
			t.Errorf("Parse(%.40q...) accepted", frame)
			continue
		}
		if len(err.Message) >= 200 {
			t.Errorf("Parse(%.40q...) error message is %d bytes: %.80q...", frame, len(err.Message), err.Message)
		}
		if !utf8.ValidString(err.Message) {
			t.Errorf("Parse(%.40q...) error message is not valid UTF-8", frame)
		}
	}
}

// Known bug (reported): clip bounds the client text before %q quotes it, and
// %q turns each control byte into four bytes ("\x01"), so a name of control
// characters yields a message of up to ~350 bytes. The test skips while the
// bug is present and starts enforcing once it is fixed.
func TestParseClipsQuotedControlCharacters(t *testing.T) {
	ctl := strings.Repeat("\x01", 1000)
	for _, frame := range []string{
		ctl,
		`{"id":1,"task":"` + strings.Repeat(`\u0001`, 1000) + `"}`,
	} {
		_, err := Parse([]byte(frame), testDefaults)
		if err == nil {
			t.Fatalf("Parse(%.40q...) accepted", frame)
		}
		if n := len(err.Message); n >= 300 {
			t.Errorf("Parse(%.40q...) error message is %d bytes", frame, n)
		}
	}
}

// Parse must not keep a reference into the frame that the caller's reuse of
// the buffer could change (the host reads frames into reused buffers).
func TestParseDoesNotAliasFrame(t *testing.T) {
	frame := []byte(`{"id":"abc","task":"fib","n":3}`)
	req, err := Parse(frame, testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	copy(frame, bytes.Repeat([]byte("z"), len(frame)))
	if string(req.ID) != `"abc"` {
		t.Errorf("Request.ID changed with the frame buffer: %q", req.ID)
	}
}

func TestParseTiming(t *testing.T) {
	for _, tc := range []struct {
		frame    string
		want     bool
		wantCode taskproto.Code
	}{
		{`{"id":1,"task":"noop","timing":true}`, true, ""},
		{`{"id":1,"task":"noop","timing":false}`, false, ""},
		{`{"id":1,"task":"noop","timing":null}`, false, ""},
		{`{"id":1,"task":"noop"}`, false, ""},
		{`{"id":"x\u0041","task":"fib","n":5,"timing":true}`, true, ""}, // the full parser's path
		{`{"id":1,"task":"noop","timing":1}`, false, taskproto.CodeBadRequest},
		{`{"id":1,"task":"noop","timing":"true"}`, false, taskproto.CodeBadRequest},
	} {
		req, err := Parse([]byte(tc.frame), testDefaults)
		switch {
		case tc.wantCode != "" && (err == nil || err.Code != tc.wantCode):
			t.Errorf("Parse(%s) error %v, want %s", tc.frame, err, tc.wantCode)
		case tc.wantCode == "" && err != nil:
			t.Errorf("Parse(%s) error %v", tc.frame, err)
		case req.Timing != tc.want:
			t.Errorf("Parse(%s).Timing = %v, want %v", tc.frame, req.Timing, tc.want)
		}
	}
}

func TestParseTraceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		frame    string
		want     string
		wantCode taskproto.Code
	}{
		{`{"id":1,"task":"noop","traceparent":"` + tp + `"}`, tp, ""},
		{`{"id":"x\u0041","task":"noop","traceparent":"` + tp + `"}`, tp, ""}, // the full parser's path
		{`{"id":1,"task":"noop","traceparent":null}`, "", ""},
		{`{"id":1,"task":"noop"}`, "", ""},
		// Malformed ones are ignored, as W3C says.
		{`{"task":"noop","traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}`, "", ""},
		{`{"task":"noop","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}`, "", ""},
		{`{"task":"noop","traceparent":"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}`, "", ""},
		{`{"task":"noop","traceparent":"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`, "", ""},
		{`{"task":"noop","traceparent":"` + tp + `-x"}`, "", ""},
		{`{"task":"noop","traceparent":"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later"}`,
			"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", ""},
		{`{"task":"noop","traceparent":"` + strings.Repeat("a", 200) + `"}`, "", ""},
		{`{"task":"noop","traceparent":"<script>"}`, "", ""},
		{`{"task":"noop","traceparent":7}`, "", taskproto.CodeBadRequest},
	} {
		req, err := Parse([]byte(tc.frame), testDefaults)
		switch {
		case tc.wantCode != "" && (err == nil || err.Code != tc.wantCode):
			t.Errorf("Parse(%s) error %v, want %s", tc.frame, err, tc.wantCode)
		case tc.wantCode == "" && err != nil:
			t.Errorf("Parse(%s) error %v", tc.frame, err)
		case req.Traceparent != tc.want:
			t.Errorf("Parse(%s).Traceparent = %q, want %q", tc.frame, req.Traceparent, tc.want)
		}
	}
}

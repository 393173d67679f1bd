// Package wsproto is the WebSocket protocol of SPEC section 3: the Python
// lab's plain-text frames and the pipelined JSON requests, parsed into tasks,
// and the replies encoded back. The host serves it; the stress client speaks it.
package wsproto

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// Defaults fill in a task's argument when a request gives none.
type Defaults struct {
	FibN int64 // [task_setting] fibonacci_limit
}

// Request is one parsed frame.
type Request struct {
	// JSON is false for the plain-text protocol, whose replies are bare text
	// in request order.
	JSON bool
	// ID is the JSON request's id exactly as sent (a string or a number), nil
	// when it had none.
	ID   json.RawMessage
	Task taskproto.Task
}

// Parse reads one text frame. On error the returned Request still says
// which protocol to answer in and, when it could be read, the id to echo.
func Parse(frame []byte, d Defaults) (Request, *taskproto.Error) {
	if !utf8.Valid(frame) {
		return Request{JSON: looksJSON(frame)}, taskproto.Errorf(taskproto.CodeBadRequest, "frame is not valid UTF-8")
	}
	if looksJSON(frame) {
		return parseJSON(frame, d)
	}
	return parsePlain(frame, d)
}

func looksJSON(frame []byte) bool {
	trimmed := bytes.TrimLeft(frame, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

func parsePlain(frame []byte, d Defaults) (Request, *taskproto.Error) {
	word := strings.TrimSpace(string(frame))
	req := Request{}
	switch word {
	case taskproto.KindFib:
		req.Task = taskproto.Task{Kind: taskproto.KindFib, N: d.FibN}
	case taskproto.KindCPU:
		req.Task = taskproto.Task{Kind: taskproto.KindCPU, N: tasks.DefaultCPUN}
	case taskproto.KindIO:
		req.Task = taskproto.Task{Kind: taskproto.KindIO, N: tasks.DefaultIOBytes}
	default:
		secs, ok := wholeNumber(word)
		if !ok {
			return req, taskproto.Errorf(taskproto.CodeUnknownTask,
				"unknown request %q; send fib, cpu, io, a whole number of seconds to sleep, or a JSON request", clip(word))
		}
		if secs > int64(time.Duration(1<<62)/time.Second) {
			return req, taskproto.Errorf(taskproto.CodeOutOfRange, "sleep of %s seconds is too long", clip(word))
		}
		req.Task = taskproto.Task{Kind: taskproto.KindSleep, N: secs * 1000}
	}
	return req, nil
}

// wholeNumber accepts decimal digits only: no sign, no spaces, no exponent.
func wholeNumber(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil { // only overflow is left
		return 1<<63 - 1, true
	}
	return n, true
}

type jsonRequest struct {
	ID   json.RawMessage `json:"id"`
	Task json.RawMessage `json:"task"`
	N    json.RawMessage `json:"n"`
}

func parseJSON(frame []byte, d Defaults) (Request, *taskproto.Error) {
	req := Request{JSON: true}
	var raw jsonRequest
	if err := json.Unmarshal(frame, &raw); err != nil {
		return req, taskproto.Errorf(taskproto.CodeBadRequest, "invalid JSON request: %v", err)
	}
	if raw.ID != nil {
		if !isStringOrNumber(raw.ID) {
			return req, taskproto.Errorf(taskproto.CodeBadRequest, "id must be a string or a number")
		}
		req.ID = raw.ID
	}
	if raw.Task == nil {
		return req, taskproto.Errorf(taskproto.CodeBadRequest, "missing task; accepted: fib, cpu, io, sleep, noop")
	}
	var kind string
	if err := json.Unmarshal(raw.Task, &kind); err != nil {
		return req, taskproto.Errorf(taskproto.CodeBadRequest, "task must be a string; accepted: fib, cpu, io, sleep, noop")
	}
	req.Task.Kind = kind
	switch kind {
	case taskproto.KindFib:
		req.Task.N = d.FibN
	case taskproto.KindCPU:
		req.Task.N = tasks.DefaultCPUN
	case taskproto.KindIO:
		req.Task.N = tasks.DefaultIOBytes
	case taskproto.KindSleep:
		req.Task.N = tasks.DefaultSleepMS
	case taskproto.KindNoop:
	default:
		return req, taskproto.Errorf(taskproto.CodeUnknownTask, "unknown task %q; accepted: fib, cpu, io, sleep, noop", clip(kind))
	}
	if raw.N != nil && !bytes.Equal(raw.N, []byte("null")) {
		n, err := wholeJSONNumber(raw.N)
		if err != nil {
			return req, err
		}
		req.Task.N = n
	}
	return req, nil
}

func isStringOrNumber(v json.RawMessage) bool {
	switch c := v[0]; {
	case c == '"':
		return true
	case c == '-' || (c >= '0' && c <= '9'):
		return true
	}
	return false
}

// wholeJSONNumber reads n: an integer, possibly written 1e6; fractions are a
// bad request, integers beyond int64 out of range.
func wholeJSONNumber(v json.RawMessage) (int64, *taskproto.Error) {
	if c := v[0]; c != '-' && (c < '0' || c > '9') {
		return 0, taskproto.Errorf(taskproto.CodeBadRequest, "n must be a whole number")
	}
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(v), 64)
	switch {
	case err == nil && f != math.Trunc(f):
		return 0, taskproto.Errorf(taskproto.CodeBadRequest, "n must be a whole number, got %s", clip(string(v)))
	case err != nil || f >= math.MaxInt64 || f <= math.MinInt64:
		return 0, taskproto.Errorf(taskproto.CodeOutOfRange, "n %s is out of range", clip(string(v)))
	}
	return int64(f), nil
}

// clip keeps client text in error messages short.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

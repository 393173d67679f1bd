// Package wsproto is the WebSocket protocol: the Python
// lab's plain-text frames and the pipelined JSON requests, parsed into tasks,
// and the replies encoded back. The host serves it; the stress client speaks it.
package wsproto

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
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
	// Timing: the request asked for its timeline ("timing": true), which
	// its reply carries (AppendTiming).
	Timing bool
	// Traceparent is the W3C trace context the request carried
	// ("traceparent"), "" when it carried none or a malformed one (which
	// W3C says to ignore). The host replaces it with the context the
	// request ran under, which the reply echoes.
	Traceparent string
}

// Parse reads one text frame. On error the returned Request still says
// which protocol to answer in and, when it could be read, the id to echo.
func Parse(frame []byte, d Defaults) (Request, *taskproto.Error) {
	if !utf8.Valid(frame) {
		return Request{JSON: looksJSON(frame)}, taskproto.Errorf(taskproto.CodeBadRequest, "frame is not valid UTF-8")
	}
	if looksJSON(frame) {
		if req, perr, ok := parseJSONFast(frame, d); ok {
			return req, perr
		}
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
				"unknown request %s; send fib, cpu, io, a whole number of seconds to sleep, or a JSON request", quote(word))
		}
		if secs > int64(time.Duration(1<<62)/time.Second) {
			return req, taskproto.Errorf(taskproto.CodeOutOfRange, "sleep of %s seconds is too long", quote(word))
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

func parseJSON(frame []byte, d Defaults) (Request, *taskproto.Error) {
	req := Request{JSON: true}
	// A map, not a struct: encoding/json matches struct fields without
	// regard to case, and "TASK" is not a field of the protocol.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(frame, &raw); err != nil {
		return req, taskproto.Errorf(taskproto.CodeBadRequest, "invalid JSON request: %s", clip(err.Error()))
	}
	if id, ok := raw["id"]; ok {
		if !isStringOrNumber(id) {
			return req, taskproto.Errorf(taskproto.CodeBadRequest, "id must be a string or a number")
		}
		req.ID = id
	}
	task, ok := raw["task"]
	if !ok || task[0] != '"' {
		return req, taskproto.Errorf(taskproto.CodeBadRequest, "task must be a string; accepted: fib, cpu, io, sleep, noop")
	}
	var kind string
	if err := json.Unmarshal(task, &kind); err != nil {
		return req, taskproto.Errorf(taskproto.CodeBadRequest, "task must be a string; accepted: fib, cpu, io, sleep, noop")
	}
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
		return req, taskproto.Errorf(taskproto.CodeUnknownTask, "unknown task %s; accepted: fib, cpu, io, sleep, noop", quote(kind))
	}
	req.Task.Kind = kind
	if n, ok := raw["n"]; ok && !bytes.Equal(n, []byte("null")) {
		v, err := wholeJSONNumber(n)
		if err != nil {
			return req, err
		}
		req.Task.N = v
	}
	if v, ok := raw["timing"]; ok {
		timing, err := jsonBool(v)
		if err != nil {
			return req, err
		}
		req.Timing = timing
	}
	if v, ok := raw["traceparent"]; ok && !bytes.Equal(v, []byte("null")) {
		var tp string
		if v[0] != '"' || json.Unmarshal(v, &tp) != nil {
			return req, taskproto.Errorf(taskproto.CodeBadRequest, "traceparent must be a string (a W3C trace context)")
		}
		if ValidTraceparent(tp) {
			req.Traceparent = tp
		}
	}
	return req, nil
}

// ValidTraceparent reports whether tp is a W3C traceparent this host
// takes: version 00's form (a later version's first 55 characters in that
// form also pass, as W3C asks), lowercase hex, neither id all zeros.
func ValidTraceparent(tp string) bool {
	if len(tp) < 55 || (len(tp) > 55 && (tp[:2] == "00" || tp[55] != '-')) || len(tp) > maxTraceparent {
		return false
	}
	if tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || tp[:2] == "ff" {
		return false
	}
	for _, f := range [...]string{tp[:2], tp[3:35], tp[36:52], tp[53:55]} {
		for i := 0; i < len(f); i++ {
			if c := f[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return strings.Trim(tp[3:35], "0") != "" && strings.Trim(tp[36:52], "0") != ""
}

// maxTraceparent bounds the traceparent a request may carry: version 00's
// is 55 characters; a later version's may add fields.
const maxTraceparent = 128

// jsonBool reads the value of "timing": true, false or null (false).
func jsonBool(v []byte) (bool, *taskproto.Error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false", "null":
		return false, nil
	}
	return false, taskproto.Errorf(taskproto.CodeBadRequest, "timing must be true or false")
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

// wholeJSONNumber reads n: an integer, possibly written 1e6 or 5.0;
// fractions are a bad request, integers beyond int64 out of range. Floats
// sort out the magnitude (big.Rat would expand 1e999999999 in full), then
// big.Rat decides exactly, where float64 would round 99999.9999999999999
// to a whole number.
func wholeJSONNumber(v json.RawMessage) (int64, *taskproto.Error) {
	if c := v[0]; c != '-' && (c < '0' || c > '9') {
		return 0, taskproto.Errorf(taskproto.CodeBadRequest, "n must be a whole number")
	}
	s := string(v)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	notWhole := taskproto.Errorf(taskproto.CodeBadRequest, "n must be a whole number, got %s", clip(s))
	outOfRange := taskproto.Errorf(taskproto.CodeOutOfRange, "n %s is out of range", clip(s))
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && f == 0: // underflow: a fraction too small for a float
		return 0, notWhole
	case err != nil || math.Abs(f) >= math.MaxInt64:
		return 0, outOfRange
	}
	r, ok := new(big.Rat).SetString(s)
	switch {
	case !ok || !r.IsInt():
		return 0, notWhole
	case !r.Num().IsInt64():
		return 0, outOfRange
	}
	return r.Num().Int64(), nil
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

// quote quotes client text for an error message, short and printable
// whatever it holds.
func quote(s string) string {
	return clip(strconv.QuoteToASCII(clip(s)))
}

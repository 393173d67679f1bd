package wsproto

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/wslab/wslab/taskproto"
)

// Reply is a JSON reply frame, as encoding/json would encode it: the
// shape AppendResult and AppendError write, which the tests check against.
type Reply struct {
	ID       json.RawMessage `json:"id"`
	Task     string          `json:"task,omitempty"`
	OK       bool            `json:"ok"`
	Result   *string         `json:"result,omitempty"`
	Strategy *string         `json:"strategy,omitempty"`
	Worker   *string         `json:"worker,omitempty"`
	QueueUS  *int64          `json:"queue_us,omitempty"`
	RunUS    *int64          `json:"run_us,omitempty"`
	Error    *ReplyError     `json:"error,omitempty"`
	// Timing is the request's timeline: stage name → instant in ns of
	// CLOCK_MONOTONIC (see taskproto.Stage).
	Timing map[string]int64 `json:"timing,omitempty"`
	// Traceparent is the W3C trace context the request ran under.
	Traceparent string `json:"traceparent,omitempty"`
}

// ReplyError is the error object of a failed JSON reply.
type ReplyError struct {
	Code    taskproto.Code `json:"code"`
	Message string         `json:"message"`
}

// EncodeResult is the reply frame for a task that succeeded.
func EncodeResult(req Request, strategy string, res taskproto.Result) []byte {
	return AppendResult(nil, req, strategy, res)
}

// EncodeError is the reply frame for a request that failed.
func EncodeError(req Request, e *taskproto.Error) []byte {
	return AppendError(nil, req, e)
}

// AppendResult appends the reply frame for a task that succeeded. It
// writes what encoding/json would write for a Reply, without reflection
// or allocation (TestAppendMatchesEncodingJSON).
func AppendResult(dst []byte, req Request, strategy string, res taskproto.Result) []byte {
	if !req.JSON {
		return append(dst, res.Value...)
	}
	dst = appendHead(dst, req)
	dst = append(dst, `,"ok":true,"result":`...)
	dst = appendString(dst, res.Value)
	dst = append(dst, `,"strategy":`...)
	dst = appendString(dst, strategy)
	dst = append(dst, `,"worker":`...)
	dst = appendString(dst, res.Worker)
	dst = append(dst, `,"queue_us":`...)
	dst = strconv.AppendInt(dst, res.Queue.Microseconds(), 10)
	dst = append(dst, `,"run_us":`...)
	dst = strconv.AppendInt(dst, res.Run.Microseconds(), 10)
	return append(dst, '}')
}

// AppendError appends the reply frame for a request that failed.
func AppendError(dst []byte, req Request, e *taskproto.Error) []byte {
	if !req.JSON {
		dst = append(dst, "error: "...)
		dst = append(dst, e.Code...)
		dst = append(dst, ": "...)
		return append(dst, e.Message...)
	}
	dst = appendHead(dst, req)
	dst = append(dst, `,"ok":false,"error":{"code":`...)
	dst = appendString(dst, string(e.Code))
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, e.Message)
	return append(dst, "}}"...)
}

// writtenWidth is the room the reply_written instant has in a reply: it
// is known only as the reply's write begins, when the host writes it in
// place (PatchWritten) of the blanks AppendTiming leaves.
const writtenWidth = 20

// AppendTiming adds tl's stamps to the reply frame in dst (which
// AppendResult or AppendError wrote), and room for reply_written, which
// begins at at in the returned frame.
func AppendTiming(dst []byte, tl *taskproto.Timeline) (frame []byte, at int) {
	dst = append(dst[:len(dst)-1], `,"timing":{`...) // the reply's closing brace comes back last
	tl.Each(func(s taskproto.Stage, ns int64) {
		if s == taskproto.StageReplyWritten {
			return
		}
		dst = appendString(dst, s.String())
		dst = append(dst, ':')
		dst = strconv.AppendInt(dst, ns, 10)
		dst = append(dst, ',')
	})
	dst = append(dst, `"reply_written":`...)
	at = len(dst)
	dst = append(dst, "0                   "[:writtenWidth]...)
	return append(dst, "}}"...), at
}

// PatchWritten writes the instant ns into the room AppendTiming left at
// the start of b.
func PatchWritten(b []byte, ns int64) {
	n := strconv.AppendInt(b[:0], ns, 10)
	for i := len(n); i < writtenWidth; i++ {
		b[i] = ' '
	}
}

// appendHead writes {"id":...,"task":"..." (the task only when known).
func appendHead(dst []byte, req Request) []byte {
	dst = append(dst, `{"id":`...)
	if req.ID == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, req.ID...) // echoed byte for byte, "<" included: Parse validated it
	}
	if req.Task.Kind != "" {
		dst = append(dst, `,"task":`...)
		dst = appendString(dst, req.Task.Kind)
	}
	if req.Traceparent != "" {
		dst = append(dst, `,"traceparent":"`...)
		dst = append(dst, req.Traceparent...) // ValidTraceparent: nothing to escape
		dst = append(dst, '"')
	}
	return dst
}

const hex = "0123456789abcdef"

// appendString quotes s as encoding/json does with HTML escaping off:
// quotes, backslashes and control bytes escaped, invalid UTF-8 as U+FFFD,
// U+2028 and U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// replyOverhead bounds what a reply holds besides its id, result and
// worker name: the keys, the task kind, the strategy's name, the times, or
// an error's code and message.
const replyOverhead = 384

// timingOverhead bounds what a reply's timeline adds to it.
const timingOverhead = 512

// MaxReplySize bounds the size of the reply to req, as the host reserves it
// when it admits the request: the id echoed, the longest result the task
// can have, and the fixed part. A result longer than this (a worker name
// or error message beyond replyOverhead) is rare and only a little longer.
func MaxReplySize(req Request) int {
	var result int64
	switch req.Task.Kind {
	case taskproto.KindFib:
		// F(n) has floor(n log10 φ) + 1 digits.
		result = int64(float64(max(req.Task.N, 0))*0.20898764024997873) + 1
	case taskproto.KindCPU, taskproto.KindIO:
		result = 20 // an int64 in decimal
	case taskproto.KindSleep:
		result = int64(len("Request done"))
	}
	n := len(req.ID) + replyOverhead + int(min(result, 1<<30))
	if req.Timing {
		n += timingOverhead
	}
	if req.Traceparent != "" {
		n += len(`,"traceparent":""`) + maxTraceparent
	}
	return n
}

package wsproto

import (
	"bytes"
	"encoding/json"

	"github.com/wslab/wslab/taskproto"
)

// Reply is a JSON reply frame. The stress client decodes it too.
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
}

// ReplyError is the error object of a failed JSON reply.
type ReplyError struct {
	Code    taskproto.Code `json:"code"`
	Message string         `json:"message"`
}

var null = json.RawMessage("null")

// EncodeResult is the reply frame for a task that succeeded.
func EncodeResult(req Request, strategy string, res taskproto.Result) []byte {
	if !req.JSON {
		return []byte(res.Value)
	}
	q, r := res.Queue.Microseconds(), res.Run.Microseconds()
	return mustMarshal(Reply{
		ID: idOrNull(req.ID), Task: req.Task.Kind, OK: true, Result: &res.Value,
		Strategy: &strategy, Worker: &res.Worker, QueueUS: &q, RunUS: &r,
	})
}

// EncodeError is the reply frame for a request that failed.
func EncodeError(req Request, e *taskproto.Error) []byte {
	if !req.JSON {
		return []byte("error: " + string(e.Code) + ": " + e.Message)
	}
	return mustMarshal(Reply{ID: idOrNull(req.ID), Task: req.Task.Kind, Error: &ReplyError{Code: e.Code, Message: e.Message}})
}

func idOrNull(id json.RawMessage) json.RawMessage {
	if id == nil {
		return null
	}
	return id
}

func mustMarshal(r Reply) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // ids are echoed byte for byte, "<" included
	if err := enc.Encode(r); err != nil {
		// Unreachable: every field is a plain value or JSON Parse validated.
		return []byte(`{"id":null,"ok":false,"error":{"code":"internal","message":"cannot encode reply"}}`)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// replyOverhead bounds what a reply holds besides its id, result and
// worker name: the keys, the task kind, the strategy's name, the times, or
// an error's code and message.
const replyOverhead = 384

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
	return len(req.ID) + replyOverhead + int(min(result, 1<<30))
}

package host

import (
	"strings"
	"testing"

	"github.com/wslab/wslab/taskproto/tracing"
)

// With tracing off, a request's trace context goes on to the strategy
// unchanged, and its reply echoes it; a request without one gets none.
func TestTraceContextPassedOnUntraced(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	f := newFake()
	ts := startServer(t, Options{Strategy: f})
	ws := dial(t, ts)
	sendText(t, ws, `{"id":"a","task":"sleep","n":7,"traceparent":"`+tp+`"}`)
	call := f.waitStarted(t, 1)[7]
	if got := tracing.FromContext(call.ctx); got != tp {
		t.Errorf("the strategy's context carries %q, want %q", got, tp)
	}
	call.finish(t, "done")
	if r := readText(t, ws); !strings.Contains(r, `"traceparent":"`+tp+`"`) {
		t.Errorf("reply %s does not echo the trace context", r)
	}
	sendText(t, ws, `{"id":"b","task":"noop"}`)
	if r := readText(t, ws); strings.Contains(r, "traceparent") {
		t.Errorf("reply %s to a request without a trace context carries one", r)
	}
}

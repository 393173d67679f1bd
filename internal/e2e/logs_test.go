//go:build linux

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestJSONLogs: with log_format = json every line the host writes is a
// JSON object, its plugin's and workers' lines arrive through it under
// their names, and a line about a request names its connection, its id
// and its trace.
func TestJSONLogs(t *testing.T) {
	h := faultHost(t, "stall:fib:13", "[server]\ntimeout_sec = 1\nlog_format = json\n")
	const traceID = "5bf92f3577b34da6a3ce929d0e0e4736"
	ws := h.dial(t)
	sendJSON(t, ws, `{"id":"stalled","task":"fib","n":13,"traceparent":"00-`+traceID+`-00f067aa0ba902b7-01"}`)
	if r := collect(t, ws, 1)["stalled"]; r.code() != "timeout" {
		t.Errorf("stalled task: %+v %+v, want timeout", r, r.Error)
	}
	var about map[string]any
	modules := map[string]bool{}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && about == nil; time.Sleep(100 * time.Millisecond) {
		modules = map[string]bool{}
		for _, line := range strings.Split(h.stderr.String(), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("a log line is not JSON: %q", line)
			}
			if mod, ok := m["@module"].(string); ok {
				modules[mod] = true
			}
			// The host's direct-worker side of multiproc replaces the
			// worker that does not stop the task it timed out.
			if strings.HasPrefix(m["@message"].(string), "worker did not stop an abandoned task") {
				about = m
			}
		}
	}
	if about == nil {
		t.Fatalf("no line about the stalled request; modules %v", modules)
	}
	if about["request_id"] != `"stalled"` || about["trace_id"] != traceID || about["conn"] == nil {
		t.Errorf("the line about the request: %v; want its conn, request_id and trace_id", about)
	}
	var worker bool
	for mod := range modules {
		worker = worker || strings.Contains(mod, "worker.w")
	}
	if !modules["host"] || !modules["multiproc"] || !worker {
		t.Errorf("log modules %v: want host, multiproc (the plugin) and its workers (worker.wN)", modules)
	}
}

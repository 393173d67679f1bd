package supervise

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLogLines(t *testing.T) {
	var out bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: &out, JSONFormat: true, Level: hclog.Debug})
	w := LogLines(log, "worker w0")
	w.Write([]byte(`{"@level":"debug","@message":"worker serving","@module":"worker.w0","pid":7}` + "\n" + `{"@level":"trace","@message":"hidden"}` + "\n"))
	w.Write([]byte("panic: boom\n\ngoroutine 1 [running]:\n"))
	w.Write([]byte(strings.Repeat("x", maxLogLine+10))) // no newline: relayed in pieces
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines relayed, want 4 (the trace line is below the level): %v", len(lines), lines)
	}
	if l := lines[0]; l["@module"] != "worker.w0" || l["@level"] != "debug" || l["@message"] != "worker serving" || l["pid"] != 7.0 {
		t.Errorf("the worker's line relayed as %v", l)
	}
	if l := lines[1]; l["@level"] != "error" || l["line"] != "panic: boom" || l["process"] != "worker w0" {
		t.Errorf("a crash report's line relayed as %v", l)
	}
	if len(w.partial) > maxLogLine {
		t.Errorf("%d bytes held of a line without end", len(w.partial))
	}
}

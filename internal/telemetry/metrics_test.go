package telemetry

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/wslab/wslab/taskproto"
)

// The host's metrics survive a round trip through the text format, which
// is how a plugin's own reach the host (Decoded), and Sum reads them back.
func TestHostMetricsRoundTrip(t *testing.T) {
	reg := NewRegistry(3)
	m := NewHostMetrics(reg, "pool")
	for i := range 3 {
		m.Answered(uint64(i), taskproto.KindFib, "", taskproto.Result{Run: time.Millisecond}, true)
	}
	m.Answered(0, "no such kind", taskproto.CodeUnknownTask, taskproto.Result{}, false)
	m.Answered(9, taskproto.KindIO, "a code from nowhere", taskproto.Result{}, true)
	m.Closed("a reason from nowhere")
	m.Closed(ClosedTooLarge)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	decoded, err := Decoded(text.Bytes()).Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(decoded) != len(mfs) {
		t.Errorf("decoded %d families, encoded %d", len(decoded), len(mfs))
	}
	parsed, err := ParseText(text.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wslab_tasks_total", map[string]string{"strategy": "pool", "kind": "fib", "outcome": "ok"}, 3},
		{"wslab_tasks_total", map[string]string{"kind": "other", "outcome": "unknown_task"}, 1},
		{"wslab_tasks_total", map[string]string{"kind": "io", "outcome": "other"}, 1},
		{"wslab_tasks_total", nil, 5},
		{"wslab_task_run_seconds", map[string]string{"strategy": "pool", "kind": "fib"}, 3},
		{"wslab_connections_closed_total", map[string]string{"reason": "error"}, 1},
		{"wslab_frames_too_large_total", nil, 1},
		{"wslab_build_info", nil, 1},
		{"wslab_tasks_total", map[string]string{"kind": "fib", "no_such_label": "x"}, 0},
		{"no_such_family", nil, 0},
	} {
		if got := Sum(parsed, c.name, c.labels); got != c.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, err := Decoded("not { metrics").Gather(); err == nil {
		t.Error("Decoded of malformed text: no error")
	}
}

package lab

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

func TestSpanLabels(t *testing.T) {
	for _, tc := range []struct {
		from, to, label string
		crossing        bool
	}{
		{"client_sent", "host_read", "client → host", true},
		{"host_read", "host_submit", "host: read → submit", false},
		{"host_submit", "task_start", "host: submit → task start", false},
		{"task_end", "reply_written", "host: task end → written", false},
		{"host_sent", "worker_recv", "host → worker", true},
		{"plugin_recv", "nats_publish", "plugin: recv → publish", false},
		{"nats_publish", "nats_deliver", "plugin → worker", true},
		{"worker_recv", "task_start", "worker: recv → task start", false},
		{"worker_sent", "nats_result", "worker → plugin", true},
		{"reply_written", "client_recv", "host → client", true},
	} {
		s := Span{From: tc.from, To: tc.to, Crossing: crosses(tc.from, tc.to)}
		if s.Crossing != tc.crossing || s.Label() != tc.label {
			t.Errorf("%s → %s: %q crossing %v, want %q %v", tc.from, tc.to, s.Label(), s.Crossing, tc.label, tc.crossing)
		}
	}
}

// A figure a run could not measure is null in bench.json, not the end of
// the file.
func TestBenchJSONWithNaN(t *testing.T) {
	b := &Bench{Strategies: []BenchStrategy{{Name: "adaptive", PythonLabSeconds: math.NaN(), Spans: []Span{{From: "a", To: "b", Micros: 2}}}}}
	data, err := json.Marshal(jsonSafe(reflect.ValueOf(b)))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Strategies []map[string]any `json:"strategies"`
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	s := back.Strategies[0]
	if v, ok := s["python_lab_s"]; !ok || v != nil || s["name"] != "adaptive" || s["spans"] == nil {
		t.Errorf("got %s", data)
	}
}

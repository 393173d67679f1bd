package lab

import "testing"

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

//go:build linux

package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// timedReply is the part of a reply that carries its timeline.
type timedReply struct {
	OK     bool             `json:"ok"`
	Timing map[string]int64 `json:"timing"`
}

// TestTimeline: a request that asks for its timeline gets, in every
// strategy, the instants of the stages it passed, on the clock the test
// reads too, in the order of the path; multiproc's pass no plugin stage,
// since the host talks to its workers itself.
func TestTimeline(t *testing.T) {
	hop := []string{"host_sent", "plugin_recv", "plugin_sent", "host_recv"}
	want := map[string][]string{
		"inproc":    nil,
		"multiproc": {"host_sent", "worker_recv", "worker_sent", "host_recv"},
	}
	for _, s := range withPython() {
		t.Run(s, func(t *testing.T) {
			skipMissingPython(t, s)
			h := startHost(t, s, "")
			ws := h.dial(t)
			if r, err := call(ws, `{"id":0,"task":"noop"}`, 10*time.Second); err != nil || decode(t, r).OK == false {
				t.Fatalf("untimed noop: %s %v", r, err)
			} else if tr := decodeTimed(t, r); tr.Timing != nil {
				t.Errorf("a request that did not ask has a timeline: %s", r)
			}
			before := taskproto.Monotonic()
			r, err := call(ws, `{"id":1,"task":"fib","n":20,"timing":true}`, 10*time.Second)
			after := taskproto.Monotonic()
			if err != nil {
				t.Fatal(err)
			}
			tr := decodeTimed(t, r)
			if !tr.OK {
				t.Fatalf("timed fib: %s", r)
			}
			stages, ok := want[pluginOf(s)]
			if !ok {
				stages = hop
			}
			stages = append(stages, "host_read", "host_submit", "task_start", "task_end", "reply_written")
			for _, name := range stages {
				if tr.Timing[name] == 0 {
					t.Errorf("no %s in %v", name, tr.Timing)
				}
			}
			if pluginOf(s) == "multiproc" && (tr.Timing["plugin_recv"] != 0 || tr.Timing["plugin_sent"] != 0) {
				t.Errorf("multiproc's task passed through its plugin: %v", tr.Timing)
			}
			var last int64
			for st := range taskproto.NumStages {
				ns, ok := tr.Timing[st.String()]
				if !ok {
					continue
				}
				if ns < before || ns > after {
					t.Errorf("%s at %d, outside the request's %d…%d", st, ns, before, after)
				}
				if ns < last {
					t.Errorf("%s at %d, before the stage ahead of it (%d): %v", st, ns, last, tr.Timing)
				}
				last = ns
			}
			for name := range tr.Timing {
				if _, ok := taskproto.StageNamed(name); !ok {
					t.Errorf("unknown stage %q", name)
				}
			}
		})
	}
}

// TestTimingSample: with timing_sample = 1 every JSON request's reply has
// its timeline; plain-text replies stay bare text.
func TestTimingSample(t *testing.T) {
	h := startHost(t, "inproc", "[server]\ntiming_sample = 1\n")
	ws := h.dial(t)
	r, err := call(ws, `{"id":1,"task":"noop"}`, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if tr := decodeTimed(t, r); tr.Timing["reply_written"] == 0 {
		t.Errorf("sampled reply without its timeline: %s", r)
	}
	if r, err := call(ws, "fib", 10*time.Second); err != nil || r[0] == '{' {
		t.Errorf("plain fib: %q %v", r, err)
	}
}

func decodeTimed(t *testing.T, s string) timedReply {
	t.Helper()
	var r timedReply
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("reply %s: %v", s, err)
	}
	return r
}

//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/client"
)

// shedLine is what the adaptive plugin logs when its queue has stood long
// enough for it to start shedding (internal/strategy/adaptive.go).
const shedLine = "adaptive: the queue stands"

// TestAdaptiveServesTheBurst is the Python lab's run against adaptive
// with its defaults: 200 clients, each sending fib, cpu and io in plain
// text and waiting for each reply, three times on one host. The burst
// leaves a queue of up to 200 tasks behind that drains in a few hundred
// milliseconds; nothing of it is shed.
func TestAdaptiveServesTheBurst(t *testing.T) {
	h := startHost(t, "adaptive", "")
	cfg := clConfig(t, h.addr, "[client]\nnum_client = 200\ntasks = fib, cpu, io\n")
	for round := range 3 {
		r := clRunTimeout(t, 2*time.Minute, "--config", cfg)
		if r.summary == nil {
			t.Fatalf("round %d: no summary (exit %d)", round, r.code)
		}
		if r.code != client.ExitOK || num(t, r.summary, "ok") != 600 {
			t.Errorf("round %d: exit %d, ok %v of 600, errors %v; want every task served", round, r.code, r.summary["ok"], r.summary["errors"])
		}
		if errs, _ := r.summary["errors"].(map[string]any); len(errs) != 0 {
			t.Errorf("round %d: errors %v, want none (no overloaded)", round, errs)
		}
	}
	if strings.Contains(h.stderr.String(), shedLine) {
		t.Error("adaptive started shedding during the bursts")
	}
	if st := h.stats(t); st.Executor.Failed != 0 || st.Executor.Completed < 1800 {
		t.Errorf("strategy stats: %d completed, %d failed; want 1800 and 0", st.Executor.Completed, st.Executor.Failed)
	}
}

// TestAdaptiveShedsAFlood: four connections offer cpu tasks of 2·10^7
// integers (a few ms of a core each) at 1000 per second for 8 s, several
// times what two cores serve, while two well-behaved clients send fib,
// cpu and io one at a time. Adaptive, with its defaults, sheds the flood
// (overloaded), and the well-behaved clients' p99, measured once shedding
// has begun, stays within a generous multiple of their p99 alone on the
// same host a moment before: unshed, they would wait behind the flood's
// whole window (up to max_running tasks of several ms each: about a
// second). The bound is loose because the VM is shared and the flood
// keeps both cores busy; what is asserted is the shedding, not speed.
func TestAdaptiveShedsAFlood(t *testing.T) {
	h := startHost(t, "adaptive", "")
	url := "ws://" + h.addr + "/ws"
	polite := []string{"--url", url, "--clients", "2", "--protocol", "json", "--tasks", "fib,cpu,io", "--duration", "3s"}

	alone := clRun(t, polite...)
	if alone.code != client.ExitOK || alone.summary == nil {
		t.Fatalf("the well-behaved clients alone: exit %d", alone.code)
	}
	baseline := num(t, alone.summary, "latency", "all", "p99_ms")

	const floodFor = 8 * time.Second
	floodStart := time.Now()
	flooded := make(chan clResult, 1)
	go func() {
		flooded <- clRunTimeout(t, floodFor+time.Minute, "--url", url, "--clients", "4", "--protocol", "json",
			"--pipeline", "256", "--rate", "1000", "--tasks", "cpu", "--n", "cpu=20000000",
			"--duration", floodFor.String(), "--max-errors", "1000000000")
	}()
	// Shedding begins once the queue has stood an interval and four of its
	// waits, at most 1 s; allow for a slow start on a busy machine.
	for deadline := time.Now().Add(floodFor / 2); !strings.Contains(h.stderr.String(), shedLine); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("adaptive did not start shedding within %v of the flood", floodFor/2)
		}
	}
	t.Logf("shedding began %v into the flood", time.Since(floodStart).Round(time.Millisecond))
	during := clRun(t, append(polite, "--max-errors", "1000000")...)
	stillFlooding := time.Since(floodStart) < floodFor

	var flood clResult
	select {
	case flood = <-flooded:
	case <-time.After(floodFor + 2*time.Minute):
		t.Fatal("the flood's client did not end")
	}
	if flood.summary == nil {
		t.Fatalf("the flood's client wrote no summary (exit %d)", flood.code)
	}
	if !stillFlooding {
		t.Fatalf("the flood ended before the well-behaved clients did: the run says nothing")
	}
	if shed := flood.summary["errors"].(map[string]any)["overloaded"]; shed == nil || shed.(float64) == 0 {
		t.Errorf("the flood was not shed: errors %v", flood.summary["errors"])
	}
	if st := h.stats(t); st.Executor.Failed == 0 {
		t.Errorf("the strategy refused nothing (stats %+v): the host, not adaptive, shed the flood", st.Executor)
	}

	if during.code != client.ExitOK || during.summary == nil {
		t.Fatalf("the well-behaved clients during the flood: exit %d", during.code)
	}
	served := num(t, during.summary, "ok")
	p99 := num(t, during.summary, "latency", "all", "p99_ms")
	t.Logf("well-behaved p99: %.1f ms alone, %.1f ms during the flood (%d served, errors %v); flood: %v sent, %v ok, errors %v",
		baseline, p99, int(served), during.summary["errors"], flood.summary["sent"], flood.summary["ok"], flood.summary["errors"])
	if served == 0 {
		t.Fatal("no task of the well-behaved clients was served during the flood")
	}
	const ratio, floor = 40, 5.0 // a baseline under 5 ms counts as 5 ms
	if bound := ratio * max(baseline, floor); p99 > bound {
		t.Errorf("well-behaved p99 %.1f ms during the flood, above %d × their p99 alone (%.1f ms, at least %.0f): %s",
			p99, ratio, baseline, floor, fmt.Sprintf("bound %.0f ms", bound))
	}
}

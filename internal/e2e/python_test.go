//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/internal/pythonplugins"
	"github.com/wslab/wslab/internal/telemetry"
)

// rawMetrics is one GET /metrics of h as text, and parsed.
func rawMetrics(t *testing.T, h *hostProc) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + h.addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v\n%s", resp.Status, err, text)
	}
	mfs, err := telemetry.ParseText(text)
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, text)
	}
	return text, mfs
}

// jsonLogLines are the host's log lines (log_format = json) whose message
// is msg.
func jsonLogLines(t *testing.T, h *hostProc, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(h.stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["@message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestPythonPluginMetrics: a host serving a Python plugin serves, on its
// /metrics, the metrics the plugin's SDK reports over the contract
// (StatsResponse.metrics, the Python SDK's registry): wslab_python_tasks_total
// counts what the plugin answered, kind by kind as the host's
// wslab_tasks_total does, and none of what the host refused itself; each
// strategy's own series are there, with the right counts; promtool finds
// nothing to say of the whole. The plugin's log lines about a task reach
// the host's log naming the request's trace (trace_id), from the plugin
// and from its worker processes.
func TestPythonPluginMetrics(t *testing.T) {
	for _, s := range pythonplugins.Names {
		t.Run(s, func(t *testing.T) {
			skipMissingPython(t, s)
			dataDir := filepath.Join(t.TempDir(), "data")
			h := startHostWith(t, hostproc.Options{Command: []string{
				filepath.Join(binDir, "host"), "--plugin=" + s, "--log-level", "debug", "--data-dir", dataDir,
				"--config", writeConfig(t, "timeout_sec = 1\nlog_format = json\n[other]\nmultiprocessing_processes = 2\n"),
			}})
			ws := h.dial(t)
			sendJSON(t, ws,
				`{"id":"f1","task":"fib","n":20}`, `{"id":"f2","task":"fib","n":20}`, `{"id":"f3","task":"fib","n":20}`,
				`{"id":"n1","task":"noop"}`, `{"id":"n2","task":"noop"}`,
				`{"id":"c","task":"cpu","n":1000}`, `{"id":"s","task":"sleep","n":10}`,
				// The host refuses these itself: the plugin never sees them.
				`{"id":"u","task":"dance"}`, `{"id":"r","task":"fib","n":-1}`)
			got := collect(t, ws, 9)
			for id, want := range map[string]string{"f1": "", "n1": "", "c": "", "s": "", "u": "unknown_task", "r": "out_of_range"} {
				if got[id].code() != want {
					t.Errorf("%s: %+v %+v, want code %q", id, got[id], got[id].Error, want)
				}
			}

			// An io task whose file cannot be made (the data directory is
			// gone) fails with internal, which the plugin (asyncio) or its
			// worker (multiprocessing) logs with the request's trace; a
			// CPU task past timeout_sec is stopped (it holds asyncio's
			// loop until its deadline), and multiprocessing replaces its
			// worker, logging so with the trace.
			const ioTrace, slowTrace = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
			if err := os.RemoveAll(dataDir); err != nil {
				t.Fatal(err)
			}
			// One after the other: asyncio would run the io task only
			// once the slow one let go of the loop, past its deadline.
			ws = h.dial(t)
			sendJSON(t, ws, `{"id":"io","task":"io","n":1000,"traceparent":"00-`+ioTrace+`-00f067aa0ba902b7-01"}`)
			if r := collect(t, ws, 1)["io"]; r.code() != "internal" {
				t.Errorf("io: %+v %+v, want internal", r, r.Error)
			}
			ws = h.dial(t)
			sendJSON(t, ws, `{"id":"slow","task":"cpu","n":1000000000,"traceparent":"00-`+slowTrace+`-b7ad6b7169203331-01"}`)
			if r := collect(t, ws, 1)["slow"]; r.code() != "timeout" {
				t.Errorf("slow: %+v %+v, want timeout", r, r.Error)
			}

			// The host has answered the slow task at its deadline; the
			// plugin answers it when it stops it (timeout, or the host's
			// cancel).
			const name = "wslab_python_tasks_total"
			var text []byte
			var mfs map[string]*dto.MetricFamily
			stopped := func() float64 {
				return telemetry.Sum(mfs, name, map[string]string{"kind": "cpu", "outcome": "timeout"}) +
					telemetry.Sum(mfs, name, map[string]string{"kind": "cpu", "outcome": "shutting_down"})
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				text, mfs = rawMetrics(t, h)
				if stopped() == 1 || time.Now().After(deadline) {
					break
				}
			}
			if stopped() != 1 {
				t.Errorf("the slow task, stopped: counted %v times, want 1", stopped())
			}
			if mf := mfs[name]; mf == nil || mf.GetType() != dto.MetricType_COUNTER {
				t.Fatalf("no counter %s on the host's /metrics:\n%s", name, text)
			}
			for _, c := range []struct {
				kind, outcome string
				want          float64
			}{{"fib", "ok", 3}, {"noop", "ok", 2}, {"cpu", "ok", 1}, {"sleep", "ok", 1}, {"io", "internal", 1}} {
				labels := map[string]string{"kind": c.kind, "outcome": c.outcome}
				if got := telemetry.Sum(mfs, name, labels); got != c.want {
					t.Errorf("%s%v = %v, want %v", name, labels, got, c.want)
				}
				if host := telemetry.Sum(mfs, "wslab_tasks_total", labels); host != c.want {
					t.Errorf("the host's wslab_tasks_total%v = %v, the plugin's %v", labels, host, c.want)
				}
			}
			// Both make every kind's and outcome's series from the start:
			// the Python SDK's sets are the protocol's, as the host's are.
			if py, host := labelValues(mfs[name]), labelValues(mfs["wslab_tasks_total"]); py["kind"] != host["kind"] || py["outcome"] != host["outcome"] {
				t.Errorf("the Python SDK's kinds and outcomes %v, the host's %v", py, host)
			}
			if got := telemetry.Sum(mfs, name, nil); got != 9 {
				t.Errorf("%s = %v in all, want 9: what the host refused itself is not the plugin's", name, got)
			}

			switch s {
			case "python-asyncio":
				// The slow task held the loop for about a second.
				lag := "wslab_python_asyncio_loop_lag_seconds"
				mf := mfs[lag]
				if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.Metric) != 1 {
					t.Fatalf("%s: %v, want a histogram", lag, mf)
				}
				if h := mf.Metric[0].GetHistogram(); h.GetSampleCount() < 2 || h.GetSampleSum() < 0.5 {
					t.Errorf("%s: %d samples summing to %vs, want the loop held for about 1 s", lag, h.GetSampleCount(), h.GetSampleSum())
				}
			case "python-multiprocessing":
				const p = "wslab_python_multiprocessing_"
				alive := func() float64 { return telemetry.Sum(mfs, p+"workers_alive", nil) }
				for deadline := time.Now().Add(10 * time.Second); alive() != 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					text, mfs = rawMetrics(t, h) // the slow task's worker is being replaced
				}
				for _, c := range []struct {
					name   string
					labels map[string]string
					want   float64
				}{
					{p + "workers_alive", nil, 2},
					{p + "tasks_queued", nil, 0},
					{p + "worker_exits_total", map[string]string{"reason": "replaced"}, 1},
					{p + "worker_exits_total", map[string]string{"reason": "died"}, 0},
					// Every task that came back from a worker: all but the slow one.
					{p + "handover_seconds", nil, 8},
				} {
					if got := telemetry.Sum(mfs, c.name, c.labels); got != c.want {
						t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
					}
				}
				if mf := mfs[p+"handover_seconds"]; mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM {
					t.Errorf("%shandover_seconds is not a histogram: %v", p, mf)
				}
				waitTrace(t, h, "worker replaced: its task was stopped", slowTrace)
			}
			waitTrace(t, h, "task failed", ioTrace)

			if promtool, err := exec.LookPath("promtool"); err != nil {
				t.Log("promtool not installed (Debian package prometheus): the exposition is not linted")
			} else {
				cmd := exec.Command(promtool, "check", "metrics")
				cmd.Stdin = bytes.NewReader(text)
				if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
					t.Errorf("promtool check metrics: %v\n%s", err, out)
				}
			}
			if t.Failed() {
				t.Logf("the Python plugin's series on /metrics:\n%s", pythonSeries(text))
			}
		})
	}
}

// waitTrace waits for a log line msg naming trace.
func waitTrace(t *testing.T, h *hostProc, msg, trace string) {
	t.Helper()
	var lines []map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		lines = jsonLogLines(t, h, msg)
		for _, l := range lines {
			if l["trace_id"] == trace {
				return
			}
		}
	}
	t.Errorf("no log line %q with trace_id %s; lines with that message: %v", msg, trace, lines)
}

// labelValues are the values each label of mf takes, sorted and joined.
func labelValues(mf *dto.MetricFamily) map[string]string {
	sets := map[string]map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if sets[l.GetName()] == nil {
				sets[l.GetName()] = map[string]bool{}
			}
			sets[l.GetName()][l.GetValue()] = true
		}
	}
	out := map[string]string{}
	for name, set := range sets {
		out[name] = strings.Join(slices.Sorted(maps.Keys(set)), ",")
	}
	return out
}

// pythonSeries are the lines of an exposition about wslab_python_ series.
func pythonSeries(text []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(text), "\n") {
		if strings.Contains(line, "wslab_python_") {
			fmt.Fprintln(&b, line)
		}
	}
	return b.String()
}

package host

import (
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/wslab/wslab/internal/telemetry"
)

// scrape is one GET /metrics, parsed.
func scrape(t *testing.T, ts *testServer, header http.Header) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, ts.httpURL()+"/metrics", header)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	mfs, err := telemetry.ParseText([]byte(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return mfs
}

// series are the name and labels of every series a scrape has, sorted.
func series(mfs map[string]*dto.MetricFamily) []string {
	var out []string
	for name, mf := range mfs {
		for _, m := range mf.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			slices.Sort(labels)
			out = append(out, name+"{"+strings.Join(labels, ",")+"}")
		}
	}
	slices.Sort(out)
	return out
}

func TestMetricsCountReplies(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t)})
	ws := dial(t, ts)
	const fibs = 7
	for i := range fibs {
		sendText(t, ws, fmt.Sprintf(`{"id":"f%d","task":"fib","n":10}`, i))
	}
	sendText(t, ws, `{"id":"s","task":"sleep","n":1}`)
	sendText(t, ws, `{"id":"u","task":"nosuch"}`)
	sendText(t, ws, `{"id":"r","task":"fib","n":-1}`)
	for range fibs + 3 {
		readReply(t, ws)
	}
	mfs := scrape(t, ts, nil)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wslab_tasks_total", map[string]string{"strategy": "inproc", "kind": "fib", "outcome": "ok"}, fibs},
		{"wslab_tasks_total", map[string]string{"kind": "sleep", "outcome": "ok"}, 1},
		{"wslab_tasks_total", map[string]string{"kind": "other", "outcome": "unknown_task"}, 1},
		{"wslab_tasks_total", map[string]string{"kind": "fib", "outcome": "out_of_range"}, 1},
		{"wslab_task_run_seconds", map[string]string{"strategy": "inproc", "kind": "fib"}, fibs},
		{"wslab_task_queue_seconds", map[string]string{"strategy": "inproc", "kind": "sleep"}, 1},
		{"wslab_connections_opened_total", nil, 1},
		{"wslab_connections_open", nil, 1},
		{"wslab_tasks_outstanding", nil, 0},
		{"wslab_build_info", nil, 1},
	} {
		if got := telemetry.Sum(mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("no %s: the host's runtime and process metrics are missing", name)
		}
	}
	ws.Close()
	waitFor(t, "the connection's close counted", func() bool {
		return telemetry.Sum(scrape(t, ts, nil), "wslab_connections_closed_total", map[string]string{"reason": "client"}) == 1
	})
}

// TestMetricsCardinality: nothing a client sends becomes a label value. A
// flood of distinct task names, ids, traceparents and malformed requests,
// over many connections, adds no series; it only moves counters.
func TestMetricsCardinality(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t)})
	ws := dial(t, ts)
	sendText(t, ws, `{"id":"warm","task":"fib","n":3}`)
	readReply(t, ws)
	before := series(scrape(t, ts, nil))

	const flood = 300
	for c := range 3 {
		ws := dial(t, ts)
		for i := range flood / 3 {
			n := c*flood + i
			switch i % 4 {
			case 0:
				sendText(t, ws, fmt.Sprintf(`{"id":"id-%d","task":"task-%d"}`, n, n))
			case 1:
				sendText(t, ws, fmt.Sprintf(`{"id":"x%d","task":"fib","n":3,"traceparent":"00-%032x-%016x-01"}`, n, n+1, n+1))
			case 2:
				sendText(t, ws, fmt.Sprintf(`{"id":"bad%d","task":"fib","n":"%d"}`, n, n))
			case 3:
				sendText(t, ws, fmt.Sprintf(`{"id":"k%d","task":"%s","n":1}`, n, strings.Repeat("z", n%50+1)))
			}
			readReply(t, ws)
		}
		ws.Close()
	}
	mfs := scrape(t, ts, nil)
	after := series(mfs)
	if !slices.Equal(before, after) {
		t.Errorf("the flood changed the series:\nbefore %d: %v\nafter %d: %v", len(before), before, len(after), after)
	}
	if got := telemetry.Sum(mfs, "wslab_tasks_total", map[string]string{"kind": "other"}); got < flood/4 {
		t.Errorf("requests of unknown kinds counted %v times, want at least %d, under kind=other", got, flood/4)
	}
}

// TestMetricsPassPromtool: Prometheus's own linter (Debian's prometheus
// package ships promtool) finds nothing to say of the host's /metrics.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; make deps installs it)")
	}
	ts := startServer(t, Options{Strategy: inproc(t)})
	ws := dial(t, ts)
	sendText(t, ws, `{"id":"a","task":"fib","n":3}`)
	sendText(t, ws, `{"id":"b","task":"nosuch"}`)
	readReply(t, ws)
	readReply(t, ws)
	_, body := get(t, ts.httpURL()+"/metrics", nil)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestMetricsBehindAuthToken(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t), AuthToken: "s3cret"})
	if code, _ := get(t, ts.httpURL()+"/metrics", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the token: %d, want 401", code)
	}
	scrape(t, ts, http.Header{"Authorization": {"Bearer s3cret"}})
}

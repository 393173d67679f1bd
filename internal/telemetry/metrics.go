// Package telemetry is where wslab's processes get their metrics registry
// and the host its per-request metrics: one place that names them, so that
// every process exposes the same names and the same bounded label sets.
//
// Names follow Prometheus's conventions: a wslab_ prefix, base units
// (_seconds), _total on counters. No label value comes from what a client
// sends: task kinds outside taskproto.Kinds count as "other", codes
// outside the protocol's as "other".
package telemetry

import (
	"bytes"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wslab/wslab/taskproto"
)

// Namespace prefixes every metric wslab defines.
const Namespace = "wslab"

// Other is the label value of a kind or code outside the known sets.
const Other = "other"

// OK is the outcome label of a task answered with a result.
const OK = "ok"

// codes are the outcomes besides OK, the protocol's error codes.
var codes = []taskproto.Code{
	taskproto.CodeBadRequest, taskproto.CodeUnknownTask, taskproto.CodeOutOfRange,
	taskproto.CodeOverloaded, taskproto.CodeTimeout, taskproto.CodeExecutorFailed,
	taskproto.CodeShuttingDown, taskproto.CodeInternal, taskproto.CodeSandboxDenied,
	taskproto.CodeResourceExhausted,
}

// NewRegistry returns a registry holding the Go runtime's and the
// process's metrics and wslab_build_info, for a process that serves or
// reports metrics.
func NewRegistry(protocol int) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(protocol),
	)
	return reg
}

// buildInfo is wslab_build_info: 1, labelled with what was built.
func buildInfo(protocol int) prometheus.Collector {
	version, revision := "(devel)", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help: "Always 1; the labels say which wslab build runs and the host-plugin protocol it speaks.",
		ConstLabels: prometheus.Labels{
			"version": version, "revision": revision, "goversion": runtime.Version(),
			"protocol": strconv.Itoa(protocol),
		},
	})
	g.Set(1)
	return g
}

// durationBuckets are the classic buckets of wslab's duration histograms:
// 50 µs (a noop through a plugin) to 60 s (past the default timeout).
var durationBuckets = [...]float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

// Close reasons of a WebSocket connection (wslab_connections_closed_total).
const (
	ClosedByClient   = "client"          // a close frame or the socket's end
	ClosedIdle       = "idle_timeout"    // nothing read for timeout_sec
	ClosedTooLarge   = "frame_too_large" // a frame past max_frame_bytes
	ClosedNotReading = "not_reading"     // replies not read (1008)
	ClosedShutdown   = "shutdown"        // the host is stopping
	ClosedError      = "error"           // anything else
)

var closeReasons = []string{ClosedByClient, ClosedIdle, ClosedTooLarge, ClosedNotReading, ClosedShutdown, ClosedError}

// Refusal reasons of an upgrade (wslab_connections_refused_total).
const (
	RefusedFull     = "max_connections"
	RefusedDraining = "shutting_down"
)

// HostMetrics are what the host counts as it serves: every request's
// outcome, its task's queue and run time, the connections' life. Its
// methods are safe for concurrent use and take no lock.
type HostMetrics struct {
	answers  *answers
	opened   prometheus.Counter
	refused  map[string]prometheus.Counter
	closed   map[string]prometheus.Counter
	tooLarge prometheus.Counter
}

// NewHostMetrics registers the host's metrics, labelled with the strategy
// it serves, with reg.
func NewHostMetrics(reg prometheus.Registerer, strategy string) *HostMetrics {
	constant := prometheus.Labels{"strategy": strategy}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help, ConstLabels: constant})
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "connections_refused_total", ConstLabels: constant,
		Help: "WebSocket upgrades refused with 503, by reason.",
	}, []string{"reason"})
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "connections_closed_total", ConstLabels: constant,
		Help: "WebSocket connections ended, by reason.",
	}, []string{"reason"})
	m := &HostMetrics{
		answers:  newAnswers(constant),
		opened:   counter("connections_opened_total", "WebSocket connections upgraded."),
		tooLarge: counter("frames_too_large_total", "Frames refused for exceeding max_frame_bytes (the connection is closed with 1009)."),
		refused:  map[string]prometheus.Counter{},
		closed:   map[string]prometheus.Counter{},
	}
	for _, r := range []string{RefusedFull, RefusedDraining} {
		m.refused[r] = refused.WithLabelValues(r)
	}
	for _, r := range closeReasons {
		m.closed[r] = closed.WithLabelValues(r)
	}
	reg.MustRegister(m.answers, m.opened, refused, closed, m.tooLarge)
	return m
}

// Answered counts a request answered with a result (code "") or an error
// reply; a task that ran (ran) observes its queue and run time. shard
// spreads the counts of concurrent callers (a connection's id).
func (m *HostMetrics) Answered(shard uint64, kind string, code taskproto.Code, res taskproto.Result, ran bool) {
	if m != nil {
		m.answers.add(shard, kind, code, res, ran)
	}
}

// Opened counts an upgraded connection.
func (m *HostMetrics) Opened() {
	if m != nil {
		m.opened.Inc()
	}
}

// Refused counts an upgrade refused for reason (RefusedFull, RefusedDraining).
func (m *HostMetrics) Refused(reason string) {
	if m != nil {
		m.refused[reason].Inc()
	}
}

// Closed counts a connection's end for reason (the Closed constants); a
// frame too large is counted apart as well.
func (m *HostMetrics) Closed(reason string) {
	if m == nil {
		return
	}
	c, ok := m.closed[reason]
	if !ok {
		c = m.closed[ClosedError]
	}
	c.Inc()
	if reason == ClosedTooLarge {
		m.tooLarge.Inc()
	}
}

// Decoded is a Gatherer of the metric families a plugin sent in the text
// exposition format (taskproto.Stats.Metrics).
type Decoded []byte

// Gather parses the exposition.
func (d Decoded) Gather() ([]*dto.MetricFamily, error) {
	if len(d) == 0 {
		return nil, nil
	}
	byName, err := ParseText(d)
	if err != nil {
		return nil, fmt.Errorf("parse the plugin's metrics: %w", err)
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		out = append(out, mf)
	}
	return out, nil
}

// ParseText parses metrics in the text exposition format, by family name.
func ParseText(text []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(text))
}

// Sum adds up the series of family name whose labels include every one of
// want: counters' and gauges' values, histograms' counts. 0 when none.
func Sum(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	var sum float64
	for _, m := range mf.Metric {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.Label {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}

package host

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/taskproto"
)

// statsWait bounds how long a scrape or /stats waits for the strategy's
// view of its work (a plugin's Stats call).
const statsWait = 2 * time.Second

// MetricsHandler serves the host's metrics in the Prometheus exposition
// formats (text, OpenMetrics, and protobuf with native histograms for a
// scraper that asks for it), behind auth_token when one is set. The host
// serves it at /metrics; Main also on [server] metrics_listen.
func (s *Server) MetricsHandler() http.Handler {
	h := promhttp.HandlerFor(prometheus.GathererFunc(s.gatherMetrics), promhttp.HandlerOpts{
		ErrorLog:          promLogger{s},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		Timeout:           2 * statsWait,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// gatherMetrics is one scrape: the host's own metrics, what the scheduler,
// the supervisor and the strategy report now, and the plugin's own.
func (s *Server) gatherMetrics() ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statsWait)
	defer cancel()
	strat := s.Strategy()
	st, err := strat.Stats(ctx)
	if err != nil {
		s.log.Debug("metrics: the strategy's stats", "error", err)
	}
	now := prometheus.NewRegistry()
	now.MustRegister(&stateCollector{s: s, strategy: strat, stats: st, statsErr: err})
	return prometheus.Gatherers{s.registry, now, telemetry.Decoded(st.Metrics)}.Gather()
}

// stateCollector reports, at a scrape, the gauges and counters the host
// reads from elsewhere: the scheduler, the plugin's supervisor, the
// strategy's Stats. It is unchecked (Describe sends nothing): the workers'
// series depend on the strategy.
type stateCollector struct {
	s        *Server
	strategy Strategy // the current one, whose name labels the series
	stats    taskproto.Stats
	statsErr error
}

func (c *stateCollector) Describe(chan<- *prometheus.Desc) {}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	constant := prometheus.Labels{"strategy": c.strategy.Info().Name}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(telemetry.Namespace, "", name), help, labels, constant)
	}
	gauge := func(name, help string, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc(name, help), prometheus.GaugeValue, float64(v), labels...)
	}
	queued, inStrategy, outstanding, window := c.s.sched.Counts()
	gauge("tasks_queued", "Tasks the host holds back, waiting for the window.", queued)
	gauge("tasks_in_flight", "Tasks handed to the strategy and not answered yet.", inStrategy)
	gauge("tasks_outstanding", "Requests admitted and not answered yet (queued or in flight).", outstanding)
	gauge("window_limit", "How many tasks the host hands the strategy at once now (the adaptive window).", window)
	gauge("connections_open", "WebSocket connections open now.", c.s.connections())
	if sup, ok := c.strategy.(*PluginSupervisor); ok {
		status := sup.Status()
		up := 0
		if status.Up {
			up = 1
		}
		gauge("plugin_up", "1 while the strategy's plugin process runs.", up)
		ch <- prometheus.MustNewConstMetric(desc("plugin_restarts_total", "Restarts of the strategy's plugin process by the host."),
			prometheus.CounterValue, float64(status.Restarts))
	}
	scrapeOK := 1
	if c.statsErr != nil {
		scrapeOK = 0
	}
	gauge("strategy_stats_up", "1 when the strategy answered this scrape's request for its stats.", scrapeOK)
	if c.statsErr != nil {
		return
	}
	st := c.stats
	gauge("strategy_tasks_running", "Tasks running in the strategy, as it reports them.", int(st.Running))
	gauge("strategy_tasks_queued", "Tasks waiting inside the strategy, as it reports them.", int(st.Queued))
	tasksDesc := desc("worker_tasks_total", "Tasks a worker has run.", "worker")
	restartsDesc := desc("worker_restarts_total", "Restarts of a worker.", "worker")
	stateDesc := desc("worker_state", "1 for the state a worker is in now.", "worker", "state")
	for _, w := range st.Workers {
		ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.CounterValue, float64(w.Tasks), w.ID)
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(w.Restarts), w.ID)
		// Every state a series, 0 or 1, so that a worker's series stay
		// the same as its state changes; a state outside them is other.
		state := w.State
		if !slices.Contains(workerStates, state) {
			state = telemetry.Other
		}
		for _, s := range workerStates {
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, boolValue(s == state), w.ID, s)
		}
	}
}

// workerStates are the values of wslab_worker_state's state label: the
// states multiproc (idle, busy) and distributed (running) report.
var workerStates = []string{"idle", "busy", "running", "restarting", telemetry.Other}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// promLogger logs promhttp's gathering errors through the host's logger.
type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) { l.s.log.Warn("metrics", "error", v) }

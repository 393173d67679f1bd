package distributed

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// deliveredHeader carries, on a result, how many times JetStream had
// delivered its task, when more than once: the dispatcher counts the
// redeliveries that a worker's death or stall caused.
const deliveredHeader = "Wslab-Delivered"

var (
	outstandingDesc = prometheus.NewDesc("wslab_distributed_tasks_outstanding",
		"Tasks this dispatcher has published and not had a result for.", nil, nil)
	duplicatesDesc = prometheus.NewDesc("wslab_distributed_results_deduplicated_total",
		"Results dropped because their task was answered already (a redelivered task's second result, or one for a task failed or abandoned).", nil, nil)
	redeliveriesDesc = prometheus.NewDesc("wslab_distributed_redeliveries_total",
		"Deliveries of a task after its first (a worker died or stalled holding it), counted when its result comes.", nil, nil)
	lostDesc = prometheus.NewDesc("wslab_distributed_nats_lost_total",
		"Times the connection to NATS was lost.", nil, nil)
)

// Describe and Collect make the dispatcher a prometheus.Collector, which
// Main registers with the SDK's plugin.Metrics(): the host serves these
// on its /metrics.
func (d *Dispatcher) Describe(ch chan<- *prometheus.Desc) {
	ch <- outstandingDesc
	ch <- duplicatesDesc
	ch <- redeliveriesDesc
	ch <- lostDesc
}

func (d *Dispatcher) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	outstanding, dups, redelivered, lost := len(d.pending), d.duplicates, d.redeliveries, d.disconnects
	d.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(outstandingDesc, prometheus.GaugeValue, float64(outstanding))
	ch <- prometheus.MustNewConstMetric(duplicatesDesc, prometheus.CounterValue, float64(dups))
	ch <- prometheus.MustNewConstMetric(redeliveriesDesc, prometheus.CounterValue, float64(redelivered))
	ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.CounterValue, float64(lost))
}

// redeliveriesIn is the count of redeliveries a result's header reports.
func redeliveriesIn(h string) int64 {
	n, err := strconv.ParseInt(h, 10, 64)
	if err != nil || n < 2 {
		return 0
	}
	return n - 1
}

package plugin

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

var (
	metricsOnce sync.Once
	metrics     *prometheus.Registry
)

// Metrics is where a strategy registers its own metrics: the host asks for
// them (Stats) whenever its /metrics is scraped, and serves them beside its
// own. Name them with a wslab_ prefix and a name of the strategy's own
// (wslab_fifo_...), in base units, and keep every label's values bounded:
// the host serves them as they come. The host reports the plugin process's
// Go runtime and each worker's tasks itself; register what only the
// strategy knows.
func Metrics() prometheus.Registerer {
	return metricsRegistry()
}

func metricsRegistry() *prometheus.Registry {
	metricsOnce.Do(func() { metrics = prometheus.NewRegistry() })
	return metrics
}

// encodeMetrics is what g gathers in the text exposition format, nil when
// it gathers nothing.
func encodeMetrics(g prometheus.Gatherer) ([]byte, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	if len(mfs) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, fmt.Errorf("encode metric %s: %w", mf.GetName(), err)
		}
	}
	return buf.Bytes(), nil
}

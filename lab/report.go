// Package lab runs every strategy under the same client load and reports,
// side by side, what each costs: throughput, latency, where the time goes,
// CPU time and memory of the host plus every process it started, and how
// much load each carries before its latency breaks. Every figure is a
// median over interleaved rounds with its confidence interval, and a
// difference is called significant only when a rank test says so.
package lab

import (
	"time"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/lab/stats"
)

// Report is one lab run: what report.json holds, and what report.md and
// report.html are drawn from.
type Report struct {
	Started    time.Time `json:"started"`
	Seconds    float64   `json:"seconds"`
	Machine    Machine   `json:"machine"`
	ConfigPath string    `json:"config"`
	// Rounds is how many times every strategy ran every scenario.
	Rounds int `json:"rounds"`
	// SLOP99MS is the latency a capacity rate must keep at p99, and
	// CapacityTasks the mix the capacity scenario offered.
	SLOP99MS      float64  `json:"slo_p99_ms"`
	CapacityTasks []string `json:"capacity_tasks,omitempty"`
	// Strategies are inproc, the plugins, then the contenders, in the
	// first round's order.
	Strategies []string `json:"strategies"`
	// Contenders are the outside servers among Strategies.
	Contenders []Contender `json:"contenders,omitempty"`
	Scenarios  []Scenario  `json:"scenarios"`
	// Results holds one entry per strategy and scenario (capacity aside).
	Results []Result `json:"results"`
	// Capacity holds one curve per strategy when the capacity scenario ran.
	Capacity []Capacity `json:"capacity,omitempty"`
	// Ladder is the isolation ladder, when the ladder scenario ran.
	Ladder *Ladder `json:"ladder,omitempty"`
}

// Machine says where the lab ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Kernel    string `json:"kernel,omitempty"`
	CPUModel  string `json:"cpu_model,omitempty"`
}

// Contender is an outside server the lab ran beside the strategies.
type Contender struct {
	Name    string `json:"name"`
	Command string `json:"command"`
}

// Scenario is one load applied to every strategy.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Client is the load, as the client package runs it (Progress and
	// Verbose are never set here). The capacity scenario sets Rate per step.
	Client client.Options `json:"-"`
	// Load describes Client for readers: "200 clients × fib, cpu, io".
	Load string `json:"load"`
}

// Result is one strategy under one scenario, over every round.
type Result struct {
	Strategy string `json:"strategy"`
	Scenario string `json:"scenario"`
	// Failed says why a round could not measure (the first such reason);
	// the estimates are over the rounds that did.
	Failed string  `json:"failed,omitempty"`
	Trials []Trial `json:"trials"`

	// Throughput is right results per second.
	Throughput stats.Estimate `json:"throughput"`
	// P50 and P99 are latencies over all task kinds, in ms.
	P50 stats.Estimate `json:"p50_ms"`
	P99 stats.Estimate `json:"p99_ms"`
	// CPUPerTask is CPU time (user + system) of the host, its plugin and
	// workers per right result, in µs.
	CPUPerTask stats.Estimate `json:"cpu_us_per_task"`
	// MeanUS is the mean latency over all task kinds, in µs: what QueueUS
	// and RunUS are parts of.
	MeanUS stats.Estimate `json:"mean_us"`
	// QueueUS and RunUS are the mean time a task waited inside the host
	// and ran, in µs, from the replies' queue_us and run_us (JSON
	// scenarios; empty for plain text, whose replies do not carry them).
	QueueUS stats.Estimate `json:"queue_us"`
	RunUS   stats.Estimate `json:"run_us"`
	// PeakRSSMB is the largest resident memory of the host, its plugin and
	// workers together.
	PeakRSSMB stats.Estimate `json:"peak_rss_mb"`
	// Errors adds up error replies, wrong results, missing replies and
	// failed connections over every round.
	Errors    int64 `json:"errors"`
	Processes int   `json:"processes"` // the most seen in one round
	// VsInproc compares the strategy with inproc under the same scenario;
	// nil for inproc itself.
	VsInproc *Versus `json:"vs_inproc,omitempty"`
	// IsolationUS is, in the rtt scenario, the round trip minus inproc's
	// in the same round, in µs.
	IsolationUS *stats.Estimate `json:"isolation_us,omitempty"`
	// Spans are, in the rtt scenario, where a noop's round trip went: the
	// median time between each stage of its timeline and the next.
	Spans []Span `json:"spans,omitempty"`
	// Host is the hosts' own account of the rounds, from their /metrics;
	// nil when no round read it (a contender serves none).
	Host *HostResult `json:"host,omitempty"`
}

// HostResult is what the hosts counted themselves over a strategy's
// rounds under a scenario, from their /metrics read before and after each
// run (client.HostView, in each Trial's summary).
type HostResult struct {
	// Rounds counts the rounds whose host's metrics were read; Unread says
	// why another's were not (the first reason).
	Rounds int    `json:"rounds"`
	Unread string `json:"unread,omitempty"`
	// Tasks is the requests a host answered per round.
	Tasks stats.Estimate `json:"tasks"`
	// Unmatched adds up, over the rounds, a host's count minus the replies
	// the client counted: 0 when the two sides agree.
	Unmatched int64 `json:"unmatched"`
	// NotOK adds up the answers other than a result, by error code.
	NotOK map[string]int64 `json:"not_ok,omitempty"`
	// The hosts' queue and run time p50 and p99 over all kinds, in ms,
	// interpolated within their histograms' buckets.
	QueueP50 stats.Estimate `json:"queue_p50_ms"`
	QueueP99 stats.Estimate `json:"queue_p99_ms"`
	RunP50   stats.Estimate `json:"run_p50_ms"`
	RunP99   stats.Estimate `json:"run_p99_ms"`
	// PluginRestarts and WorkerRestarts add up over the rounds; nil when
	// the strategy reports none (inproc has no plugin, pool no workers).
	PluginRestarts *int64 `json:"plugin_restarts,omitempty"`
	WorkerRestarts *int64 `json:"worker_restarts,omitempty"`
	// Refused (503) and Closed connections, by reason, over the rounds.
	Refused map[string]int64 `json:"connections_refused,omitempty"`
	Closed  map[string]int64 `json:"connections_closed,omitempty"`
}

// Versus compares a strategy's figures with another's.
type Versus struct {
	Throughput stats.Comparison `json:"throughput"`
	P50        stats.Comparison `json:"p50"`
	P99        stats.Comparison `json:"p99"`
}

// Trial is one round of a strategy under a scenario.
type Trial struct {
	Round   int             `json:"round"`
	Failed  string          `json:"failed,omitempty"`
	Summary *client.Summary `json:"summary,omitempty"`
	// Resources of the host and every process it started, during the run.
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	Processes  int     `json:"processes"`
	// Ladder is, in the ladder scenario, what the round measured besides
	// its client run: a worker's memory and start-up.
	Ladder *LadderTrial `json:"ladder,omitempty"`
}

// Capacity is a strategy's latency against the offered rate.
type Capacity struct {
	Strategy string          `json:"strategy"`
	Failed   string          `json:"failed,omitempty"`
	Points   []CapacityPoint `json:"points"`
	// Sustained is the highest offered rate that most rounds carried with
	// p99 within the SLO and no error, every lower rate too; 0 for none.
	Sustained float64 `json:"sustained"`
}

// CapacityPoint is one offered rate.
type CapacityPoint struct {
	Rate   float64         `json:"rate"`
	Trials []CapacityTrial `json:"trials"`
	// Passed counts the rounds that sustained the rate.
	Passed     int            `json:"passed"`
	Sustained  bool           `json:"sustained"`
	P50        stats.Estimate `json:"p50_ms"`
	P99        stats.Estimate `json:"p99_ms"`
	Throughput stats.Estimate `json:"throughput"`
	// ErrorShare is the share of the offered requests refused or failed,
	// 0 to 1: what a strategy that sheds load pays for its latency.
	ErrorShare stats.Estimate `json:"error_share"`
}

// CapacityTrial is one round at one rate.
type CapacityTrial struct {
	Round      int     `json:"round"`
	Failed     string  `json:"failed,omitempty"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	Throughput float64 `json:"throughput"`
	Errors     int64   `json:"errors"`
	Offered    int64   `json:"offered"` // requests due: sent and unsent
	Sustained  bool    `json:"sustained"`
}

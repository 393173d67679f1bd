// Package lab runs every strategy under the same client load and reports,
// side by side, what each costs: throughput, latency, CPU time and memory of
// the host plus every process it started.
package lab

import (
	"time"

	"github.com/wslab/wslab/client"
)

// Report is one lab run: what report.json holds, and what report.md and
// report.html are drawn from.
type Report struct {
	Started    time.Time  `json:"started"`
	Seconds    float64    `json:"seconds"`
	Machine    Machine    `json:"machine"`
	ConfigPath string     `json:"config"`
	Strategies []string   `json:"strategies"` // in run order, inproc first
	Scenarios  []Scenario `json:"scenarios"`
	Results    []Result   `json:"results"`
}

// Machine says where the lab ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Kernel    string `json:"kernel,omitempty"`
}

// Scenario is one load applied to every strategy.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Client is the load, as the client package runs it (Progress and
	// Verbose are never set here).
	Client client.Options `json:"-"`
	// Load describes Client for readers: "200 clients × fib, cpu, io".
	Load string `json:"load"`
}

// Result is one strategy under one scenario.
type Result struct {
	Strategy string `json:"strategy"`
	Scenario string `json:"scenario"`
	// Failed says why the strategy could not start or the run broke; the
	// other fields may then be empty.
	Failed  string          `json:"failed,omitempty"`
	Summary *client.Summary `json:"summary,omitempty"`
	// Resources of the host and every process it started, during the run.
	CPUSeconds float64 `json:"cpu_seconds"` // user + system
	PeakRSSMB  float64 `json:"peak_rss_mb"` // largest sum of resident sets seen
	Processes  int     `json:"processes"`   // host, plugin, workers seen
	// Throughput relative to inproc under the same scenario (1 = same, 0.5 =
	// half); 0 when either has no throughput.
	RelThroughput float64 `json:"rel_throughput"`
	// P50 latency (all kinds) relative to inproc's (2 = twice as slow).
	RelP50 float64 `json:"rel_p50"`
}

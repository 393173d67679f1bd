package lab

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wslab/wslab/client"
)

// Where a noop's round trip goes: a request that asks for its timeline
// ("timing": true) comes back with the instant of every stage it passed,
// and the client adds its own send and read. A span is the time between
// one stage and the next the request passed.

// Span is the median time a strategy's noops spent between two stages.
type Span struct {
	From   string  `json:"from"`
	To     string  `json:"to"`
	Micros float64 `json:"p50_us"`
	// Crossing says the span crosses from one process to another (a kernel
	// crossing, and the wake-up of the reader on the far side); otherwise
	// it is work and hand-offs inside one process.
	Crossing bool `json:"crossing"`
}

// Label names the span for a reader: "host → plugin" for a crossing,
// "plugin: recv → task" for work inside a process.
func (s Span) Label() string {
	from, to := stageProcess(s.From), stageProcess(s.To)
	if s.Crossing {
		return from + " → " + to
	}
	where := from
	if where == "task" {
		where = to
	}
	return where + ": " + stageStep(s.From) + " → " + stageStep(s.To)
}

// stageProcess is the process a stage happens in.
func stageProcess(stage string) string {
	switch {
	case strings.HasPrefix(stage, "client_"):
		return "client"
	case strings.HasPrefix(stage, "host_"), stage == "reply_written":
		return "host"
	case strings.HasPrefix(stage, "plugin_"), stage == "nats_publish", stage == "nats_result":
		return "plugin"
	case strings.HasPrefix(stage, "worker_"), stage == "nats_deliver":
		return "worker"
	case strings.HasPrefix(stage, "task_"):
		return "task"
	}
	return stage
}

// stageStep is the stage's name within its process: "recv", "task start".
func stageStep(stage string) string {
	if strings.HasPrefix(stage, "task_") {
		return strings.Replace(stage, "_", " ", 1)
	}
	if i := strings.IndexByte(stage, '_'); i >= 0 {
		return stage[i+1:]
	}
	return stage
}

// crosses says whether a request goes from one process to another between
// from and to. A task runs in the process that took it: task stages are
// that process's.
func crosses(from, to string) bool {
	p, q := stageProcess(from), stageProcess(to)
	return p != q && p != "task" && q != "task"
}

// spansOf are a run's spans of kind's requests, in path order.
func spansOf(sum *client.Summary, kind string) []Span {
	var out []Span
	for _, s := range sum.Timing[kind] {
		out = append(out, Span{From: s.From, To: s.To, Micros: s.P50, Crossing: crosses(s.From, s.To)})
	}
	return out
}

// timedNoops runs noops one at a time on one connection for d, each asking
// for its timeline, and returns where their time went.
func timedNoops(ctx context.Context, url string, d time.Duration) ([]Span, error) {
	sum, err := client.Run(ctx, client.Options{URL: url, Clients: 1, Pipeline: 1, Tasks: []string{"noop"}, Protocol: "json",
		Duration: d, FibN: 5000, Timing: true})
	if err != nil {
		return nil, err
	}
	if err := complete(sum); err != nil {
		return nil, fmt.Errorf("timed noops: %w", err)
	}
	return spansOf(sum, "noop"), nil
}

// spanKey names a span in a bench's samples.
func spanKey(strategy string, s Span) string { return strategy + ".span." + s.From + ">" + s.To }

// writeSpans prints where each strategy's noop round trip goes: one line
// per strategy, its spans in path order, crossings marked ⇄.
func writeSpans(w io.Writer, ss []BenchStrategy) {
	fmt.Fprintln(w, "where a noop's round trip goes (µs, medians; ⇄ marks a crossing between processes):")
	for _, s := range ss {
		if len(s.Spans) == 0 {
			continue
		}
		var parts []string
		total := 0.0
		for _, sp := range s.Spans {
			mark := ""
			if sp.Crossing {
				mark = "⇄ "
			}
			parts = append(parts, fmt.Sprintf("%s%s %.1f", mark, sp.Label(), sp.Micros))
			total += sp.Micros
		}
		fmt.Fprintf(w, "  %-12s %6.1f = %s\n", s.Name, total, strings.Join(parts, " | "))
	}
	fmt.Fprintln(w)
}

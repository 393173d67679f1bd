package lab

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/wcharczuk/go-chart/v2/drawing"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/lab/stats"
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

// The parts of a round trip the report's waterfall stacks, in path order:
// crossings between processes (client→host; the host's to a plugin or
// worker; a plugin's to its workers and back through NATS; back to the
// host; to the client), each process's own work, and the task. Short
// names: the chart's legend is one row.
var spanParts = []struct {
	name     string
	crossing bool
	color    string
}{
	{"client→host", true, "9ecae1"},
	{"host", false, "f28e2b"},
	{"→plugin/worker", true, "6baed6"},
	{"plugin", false, "ffbe7d"},
	{"NATS", true, "4292c6"},
	{"worker", false, "e15759"},
	{"task", false, "59a14f"},
	{"→host", true, "2171b5"},
	{"→client", true, "08519c"},
}

// spanPart is which part of spanParts s belongs to.
func spanPart(s Span) int {
	from, to := stageProcess(s.From), stageProcess(s.To)
	switch {
	case s.From == "task_start" && s.To == "task_end":
		return 6
	case s.Crossing && from == "client":
		return 0
	case s.Crossing && to == "client":
		return 8
	case s.Crossing && from == "host":
		return 2
	case s.Crossing && to == "host":
		return 7
	case s.Crossing:
		return 4
	}
	where := from
	if where == "task" {
		where = to
	}
	switch where {
	case "plugin":
		return 3
	case "worker":
		return 5
	}
	return 1
}

// partTotals adds a strategy's spans up by part (µs; NaN for a part its
// noops do not pass).
func partTotals(spans []Span) []float64 {
	out := nans(len(spanParts))
	for _, s := range spans {
		p := spanPart(s)
		if math.IsNaN(out[p]) {
			out[p] = 0
		}
		out[p] += s.Micros
	}
	return out
}

// medianSpans are the spans of a result's trials, each the median of the
// trials that passed it, in path order.
func medianSpans(trials []Trial) []Span {
	var order []Span
	values := map[[2]string][]float64{}
	for _, t := range trials {
		if t.Summary == nil {
			continue
		}
		for _, s := range spansOf(t.Summary, "noop") {
			k := [2]string{s.From, s.To}
			if _, ok := values[k]; !ok {
				order = append(order, s)
			}
			values[k] = append(values[k], s.Micros)
		}
	}
	for i := range order {
		order[i].Micros = stats.Median(values[[2]string{order[i].From, order[i].To}])
	}
	return order
}

// waterfallChart stacks, per strategy, where a noop's round trip goes; nil
// when no strategy's rtt trials carried timelines.
func (r *Report) waterfallChart() (*figure, error) {
	names, results := r.scenarioResults(scenarioRTT)
	var cats []string
	var totals [][]float64
	for i, res := range results {
		if res == nil || len(res.Spans) == 0 {
			continue
		}
		cats, totals = append(cats, names[i]), append(totals, partTotals(res.Spans))
	}
	if len(cats) == 0 {
		return nil, nil
	}
	var series []barSeries
	for p, part := range spanParts {
		vals := make([]float64, len(cats))
		seen := false
		for i := range cats {
			vals[i] = totals[i][p]
			seen = seen || !math.IsNaN(vals[i])
		}
		if !seen {
			continue
		}
		for i := range vals { // a part a strategy skips adds nothing to its bar
			if math.IsNaN(vals[i]) {
				vals[i] = 0
			}
		}
		c := drawing.ColorFromHex(part.color)
		series = append(series, barSeries{name: part.name, values: vals, color: func(int) drawing.Color { return c }})
	}
	svg, err := barChart("Where a noop's round trip goes", "µs (medians)", cats, true, series...)
	if err != nil {
		return nil, fmt.Errorf("waterfall chart: %w", err)
	}
	return &figure{"waterfall", "One noop at a time, each asking for its timeline: the median time between each stage it passed and the next, " +
		"stacked in path order. Blues are crossings from one process to another (the kernel and the wake-up on the far side); " +
		"the warm colours are wslab's own work in each process; green is the task.", svg}, nil
}

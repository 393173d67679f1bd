package lab

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/lab/stats"
	"github.com/wslab/wslab/taskproto"
)

// Where a noop's round trip goes: a request that asks for its timeline
// ("timing": true) comes back with the instant of every stage it passed,
// and the client adds its own send and read. A span is the time between
// one stage and the next the request passed. Spans are grouped into kinds,
// the columns of the tables: each crossing from one process to another by
// its direction ("host→plugin"), each process's own work ("host"), and
// the task.

// Span is the median time a strategy's noops spent between two stages.
type Span struct {
	From   string  `json:"from"`
	To     string  `json:"to"`
	Micros float64 `json:"p50_us"`
	// Crossing says the span crosses from one process to another (a kernel
	// crossing, and the wake-up of the reader on the far side); otherwise
	// it is work and hand-offs inside one process.
	Crossing bool `json:"crossing"`
	// Kind is the span's column: "client→host", "host", "task"…
	Kind string `json:"kind"`
}

// newSpan is the span from one stage to the next, with its kind.
func newSpan(from, to string, us float64) Span {
	return Span{From: from, To: to, Micros: us, Crossing: crosses(from, to), Kind: spanKind(from, to)}
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

// stageIndex is the stage's place on a request's path: client_sent first,
// then taskproto's stages in order, client_recv last; unknown stages after.
func stageIndex(stage string) int {
	switch stage {
	case "client_sent":
		return 0
	case "client_recv":
		return int(taskproto.NumStages) + 1
	}
	if s, ok := taskproto.StageNamed(stage); ok {
		return int(s) + 1
	}
	return int(taskproto.NumStages) + 2
}

// pathOrder compares two stage pairs by where they are on the path.
func pathOrder(aFrom, aTo, bFrom, bTo string) int {
	if d := stageIndex(aFrom) - stageIndex(bFrom); d != 0 {
		return d
	}
	return stageIndex(aTo) - stageIndex(bTo)
}

// sortSpans puts spans in path order.
func sortSpans(spans []Span) {
	slices.SortStableFunc(spans, func(a, b Span) int { return pathOrder(a.From, a.To, b.From, b.To) })
}

// crosses says whether a request goes from one process to another between
// from and to. A task runs in the process that took it: task stages are
// that process's.
func crosses(from, to string) bool {
	p, q := stageProcess(from), stageProcess(to)
	return p != q && p != "task" && q != "task"
}

// spanKind is the column a span from one stage to the next adds to: its
// direction for a crossing ("host→plugin"), "task" for the task's run,
// otherwise the process whose work it is ("host").
func spanKind(from, to string) string {
	if from == "task_start" && to == "task_end" {
		return "task"
	}
	p, q := stageProcess(from), stageProcess(to)
	if crosses(from, to) {
		return p + "→" + q
	}
	if p == "task" {
		return q
	}
	return p
}

// spanKinds are the kinds in the order a request meets them.
var spanKinds = []string{
	"client→host", "host", "host→plugin", "host→worker", "plugin", "plugin→worker",
	"worker", "task", "worker→plugin", "worker→host", "plugin→host", "host→client",
}

// spanColumn is one kind that occurs and the stage pairs it covers.
type spanColumn struct {
	Kind     string
	Crossing bool
	Covers   []string // "host_read → host_submit", in path order
}

// spanColumns are the kinds that occur in any of the strategies' spans, in
// path order (kinds spanKinds does not know after the others).
func spanColumns(sets ...[]Span) []spanColumn {
	var cols []spanColumn
	type pair struct{ from, to string }
	covers := map[string][]pair{}
	for _, spans := range sets {
		for _, s := range spans {
			if !slices.ContainsFunc(cols, func(c spanColumn) bool { return c.Kind == s.Kind }) {
				cols = append(cols, spanColumn{Kind: s.Kind, Crossing: s.Crossing})
			}
			if p := (pair{s.From, s.To}); !slices.Contains(covers[s.Kind], p) {
				covers[s.Kind] = append(covers[s.Kind], p)
			}
		}
	}
	rank := func(kind string) int {
		if i := slices.Index(spanKinds, kind); i >= 0 {
			return i
		}
		return len(spanKinds)
	}
	slices.SortStableFunc(cols, func(a, b spanColumn) int { return rank(a.Kind) - rank(b.Kind) })
	for i := range cols {
		ps := covers[cols[i].Kind]
		slices.SortStableFunc(ps, func(a, b pair) int { return pathOrder(a.from, a.to, b.from, b.to) })
		for _, p := range ps {
			cols[i].Covers = append(cols[i].Covers, p.from+" → "+p.to)
		}
	}
	return cols
}

// header is the column's name in a table; crossings are marked ⇄.
func (c spanColumn) header() string {
	if c.Crossing {
		return c.Kind + " ⇄"
	}
	return c.Kind
}

// kindTotals adds spans up by column (µs; NaN for a column the spans do
// not pass).
func kindTotals(spans []Span, cols []spanColumn) []float64 {
	out := nans(len(cols))
	for _, s := range spans {
		i := slices.IndexFunc(cols, func(c spanColumn) bool { return c.Kind == s.Kind })
		if i < 0 {
			continue
		}
		if math.IsNaN(out[i]) {
			out[i] = 0
		}
		out[i] += s.Micros
	}
	return out
}

// spansTotal is the sum of the spans' medians (µs).
func spansTotal(spans []Span) float64 {
	total := 0.0
	for _, s := range spans {
		total += s.Micros
	}
	return total
}

// spanLegend says which stages each column covers, one line per column.
func spanLegend(cols []spanColumn) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.header() + ": " + strings.Join(c.Covers, ", ")
	}
	return out
}

// spansOf are a run's spans of kind's requests, in path order.
func spansOf(sum *client.Summary, kind string) []Span {
	var out []Span
	for _, s := range sum.Timing[kind] {
		out = append(out, newSpan(s.From, s.To, s.P50))
	}
	sortSpans(out)
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

// writeSpans prints where each strategy's noop round trip goes: a row per
// strategy, a column per kind of span that occurs, then which stages each
// column covers.
func writeSpans(w io.Writer, ss []BenchStrategy) {
	var sets [][]Span
	for _, s := range ss {
		sets = append(sets, s.Spans)
	}
	cols := spanColumns(sets...)
	if len(cols) == 0 {
		fmt.Fprint(w, "where a noop's round trip goes: no strategy's noops carried a timeline\n\n")
		return
	}
	fmt.Fprintln(w, "where a noop's round trip goes (µs, median; ⇄ marks a crossing between processes):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "strategy\t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c.header())
	}
	fmt.Fprintln(tw, "sum\t")
	for _, s := range ss {
		if len(s.Spans) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t", s.Name)
		for _, v := range kindTotals(s.Spans, cols) {
			if math.IsNaN(v) {
				fmt.Fprint(tw, "-\t")
			} else {
				fmt.Fprintf(tw, "%.1f\t", v)
			}
		}
		fmt.Fprintf(tw, "%.1f\t\n", spansTotal(s.Spans))
	}
	tw.Flush()
	fmt.Fprintln(w, "the stages each column covers (the others: work inside one process, or the task; sum: of the medians, near the round trip's median):")
	for _, l := range spanLegend(cols) {
		fmt.Fprintf(w, "  %s\n", l)
	}
	fmt.Fprintln(w)
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
	sortSpans(order)
	return order
}

// timelineTable is, in the rtt scenario, where each strategy's noop round
// trip goes: a column per kind of span that occurs, and those columns;
// nil when no strategy's noops carried a timeline.
func (r *Report) timelineTable() (*table, []spanColumn) {
	names, results := r.scenarioResults(scenarioRTT)
	var sets [][]Span
	for _, res := range results {
		if res != nil {
			sets = append(sets, res.Spans)
		}
	}
	cols := spanColumns(sets...)
	if len(cols) == 0 {
		return nil, nil
	}
	t := &table{Header: []string{"strategy"}}
	for _, c := range cols {
		t.Header = append(t.Header, c.header()+" µs")
	}
	t.Header = append(t.Header, "sum µs")
	for i, res := range results {
		row := tableRow{Strategy: names[i]}
		if res == nil || len(res.Spans) == 0 {
			row.Note = "no timeline"
			t.Rows = append(t.Rows, row)
			continue
		}
		for _, v := range kindTotals(res.Spans, cols) {
			row.Cells = append(row.Cells, num(v))
		}
		row.Cells = append(row.Cells, num(spansTotal(res.Spans)))
		t.Rows = append(t.Rows, row)
	}
	return t, cols
}

// timelineNote says what the timeline table's columns cover.
func timelineNote(cols []spanColumn) string {
	return "One noop at a time, each asking for its timeline: the median time from each stage it passed to the next, " +
		"added up by kind: ⇄ a crossing from one process to another (the kernel and the wake-up on the far side), " +
		"otherwise the work inside one process or the task's run; sum: of the medians, near the round trip's median. " +
		"The stages each column covers: " + strings.Join(spanLegend(cols), "; ") + "."
}

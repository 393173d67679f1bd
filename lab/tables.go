package lab

// The tables and the formatting of numbers that report.md and report.html share.

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wslab/wslab/lab/stats"
)

// tableHeader names the columns of a scenario's table.
var tableHeader = []string{"strategy", "tasks/s", "vs inproc", "p50 ms", "p99 ms", "p99 vs inproc",
	"errors", "CPU µs/task", "queue µs", "run µs", "peak RSS MB", "processes"}

// tableRow is one strategy's line in a table: Cells (one per column after
// the strategy), or why there are none: Failed (the first line of
// Result.Failed) or a Note ("no result").
type tableRow struct {
	Strategy string
	Cells    []string
	Failed   string
	Note     string
}

// table is a header and its rows; ID, when set, names it in report.html
// (data-table="ID").
type table struct {
	ID     string
	Header []string
	Rows   []tableRow
}

// Span is how many columns follow the strategy's.
func (t *table) Span() int { return len(t.Header) - 1 }

// failure is a strategy that failed under a scenario, and why.
type failure struct {
	Strategy, Scenario, Reason string
}

// strategyNames is r.Strategies followed by any strategy that only appears
// in r.Results or r.Capacity.
func (r *Report) strategyNames() []string {
	names := slices.Clone(r.Strategies)
	for _, res := range r.Results {
		if !slices.Contains(names, res.Strategy) {
			names = append(names, res.Strategy)
		}
	}
	for _, c := range r.Capacity {
		if !slices.Contains(names, c.Strategy) {
			names = append(names, c.Strategy)
		}
	}
	return names
}

// scenarioResults returns r.strategyNames() and, for each, its result
// under the scenario, or nil when there is none.
func (r *Report) scenarioResults(scenario string) (names []string, results []*Result) {
	names = r.strategyNames()
	results = make([]*Result, len(names))
	for i, n := range names {
		results[i] = r.result(n, scenario)
	}
	return names, results
}

// capacityOf is the strategy's capacity curve, nil when there is none.
func (r *Report) capacityOf(strategy string) *Capacity {
	for i := range r.Capacity {
		if r.Capacity[i].Strategy == strategy {
			return &r.Capacity[i]
		}
	}
	return nil
}

// failures lists every failed result, in report order.
func (r *Report) failures() []failure {
	var out []failure
	for _, res := range r.Results {
		if res.Failed != "" {
			out = append(out, failure{res.Strategy, res.Scenario, res.Failed})
		}
	}
	for _, c := range r.Capacity {
		if c.Failed != "" {
			out = append(out, failure{c.Strategy, scenarioCapacity, c.Failed})
		}
	}
	return out
}

// measured says whether res has figures worth showing.
func measured(res *Result) bool {
	return res != nil && res.Throughput.N() > 0
}

// extraTable is the scenario's own table, before its main one: the
// isolation costs of rtt, the rates of capacity; nil for the others.
func (r *Report) extraTable(scenario string) *table {
	switch scenario {
	case scenarioCapacity:
		return r.capacityTable()
	case scenarioRTT:
		return r.isolationTable()
	}
	return nil
}

// mainTable is the scenario's figures, a row per strategy under
// tableHeader; nil for capacity, which has no Results.
func (r *Report) mainTable(scenario string) *table {
	if scenario == scenarioCapacity {
		return nil
	}
	names, results := r.scenarioResults(scenario)
	t := &table{Header: tableHeader}
	for i, res := range results {
		row := tableRow{Strategy: names[i]}
		switch {
		case res == nil:
			row.Note = "no result"
		case !measured(res) && res.Failed != "":
			row.Failed = firstLine(res.Failed, 120)
		case !measured(res):
			row.Note = "no measurements"
		default:
			var tputVs, p99Vs string
			if v := res.VsInproc; v != nil {
				tputVs, p99Vs = delta(v.Throughput), delta(v.P99)
			}
			row.Cells = []string{
				estimate(res.Throughput), tputVs, estimate(res.P50), estimate(res.P99), p99Vs,
				strconv.FormatInt(res.Errors, 10), estimate(res.CPUPerTask),
				estimate(res.QueueUS), estimate(res.RunUS), estimate(res.PeakRSSMB),
				strconv.Itoa(res.Processes),
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// kinds builds the per-task-kind latency table of a scenario, medians over
// the rounds of each kind's p50 and p99; nil when the scenario has a
// single kind (the main table already says it all).
func (r *Report) kinds(scenario string) *table {
	names, results := r.scenarioResults(scenario)
	set := map[string]bool{}
	for _, res := range results {
		for _, t := range trialsOf(res) {
			for k := range t.Summary.Latency {
				if k != "all" {
					set[k] = true
				}
			}
		}
	}
	if len(set) < 2 {
		return nil
	}
	kinds := slices.Sorted(maps.Keys(set))
	t := &table{Header: append([]string{"strategy"}, kinds...)}
	for i, res := range results {
		row := tableRow{Strategy: names[i]}
		if !measured(res) {
			row.Note = dash
		} else {
			for _, k := range kinds {
				var p50, p99 []float64
				for _, tr := range trialsOf(res) {
					if p, ok := tr.Summary.Latency[k]; ok && p.Count > 0 {
						p50, p99 = append(p50, p.P50), append(p99, p.P99)
					}
				}
				cell := dash
				if len(p50) > 0 {
					cell = num(stats.Median(p50)) + " / " + num(stats.Median(p99))
				}
				row.Cells = append(row.Cells, cell)
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// trialsOf is res's trials that measured.
func trialsOf(res *Result) []Trial {
	if res == nil {
		return nil
	}
	var out []Trial
	for _, t := range res.Trials {
		if t.Summary != nil {
			out = append(out, t)
		}
	}
	return out
}

// isolationTable is the rtt scenario's round trips and what each
// strategy's isolation adds to inproc's; nil without the scenario.
func (r *Report) isolationTable() *table {
	names, results := r.scenarioResults(scenarioRTT)
	if !slices.ContainsFunc(results, measured) {
		return nil
	}
	t := &table{Header: []string{"strategy", "round trip µs", "isolation µs over inproc", "vs inproc"}}
	for i, res := range results {
		row := tableRow{Strategy: names[i]}
		if !measured(res) {
			row.Note = dash
			t.Rows = append(t.Rows, row)
			continue
		}
		rtt := estimate(res.P50.Scaled(1000))
		iso, vs := dash, dash
		if res.IsolationUS != nil {
			iso = estimate(*res.IsolationUS)
		}
		if res.VsInproc != nil {
			vs = delta(res.VsInproc.P50)
		}
		if res.Strategy == "inproc" {
			iso, vs = "0 (the base)", ""
		}
		row.Cells = []string{rtt, iso, vs}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// capacityTable is each strategy's capacity at the SLO and its median
// p99 at every rate, with how many rounds sustained it and, where requests
// were refused or failed, their median share; nil when the capacity
// scenario did not run.
func (r *Report) capacityTable() *table {
	if len(r.Capacity) == 0 {
		return nil
	}
	t := &table{Header: []string{"strategy", fmt.Sprintf("capacity at p99 ≤ %s ms", num(r.SLOP99MS))}}
	for _, pt := range r.Capacity[0].Points {
		t.Header = append(t.Header, num(pt.Rate)+"/s p99 ms")
	}
	for _, name := range r.strategyNames() {
		c := r.capacityOf(name)
		row := tableRow{Strategy: name}
		switch {
		case c == nil:
			row.Note = "no result"
		case !slices.ContainsFunc(c.Points, func(p CapacityPoint) bool { return p.ran() }) && c.Failed != "":
			row.Failed = firstLine(c.Failed, 120)
		default:
			row.Cells = []string{capacityCell(c)}
			for _, pt := range c.Points {
				cell := dash
				if pt.ran() {
					cell = fmt.Sprintf("%s (%d/%d)", num(pt.P99.Median), pt.Passed, r.Rounds)
					if e := pt.ErrorShare; e.N() > 0 && e.Median > 0 {
						cell += fmt.Sprintf(", %s%% errors", num(100*e.Median))
					}
				}
				row.Cells = append(row.Cells, cell)
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// capacityCell is a strategy's capacity: "≥ 4000 tasks/s" when it
// sustained every rate offered, so that its limit lies above the ladder.
func capacityCell(c *Capacity) string {
	switch {
	case c.Sustained == 0:
		return "none of the rates"
	case c.atTop():
		return "≥ " + num(c.Sustained) + " tasks/s"
	}
	return num(c.Sustained) + " tasks/s"
}

// estimate formats a median and its interval: "2085 ±4%", "2085 ±∞" when
// the rounds were too few for an interval, a dash when nothing measured.
func estimate(e stats.Estimate) string {
	switch {
	case e.N() == 0:
		return dash
	case e.N() == 1 || e.Bounded && e.Lo == e.Hi:
		return num(e.Median)
	case !e.Bounded:
		return num(e.Median) + " ±∞"
	}
	if sp := 100 * e.Spread(); !math.IsNaN(sp) {
		if sp < 1 {
			return fmt.Sprintf("%s ±%.1f%%", num(e.Median), sp)
		}
		return fmt.Sprintf("%s ±%.0f%%", num(e.Median), sp)
	}
	return fmt.Sprintf("%s [%s, %s]", num(e.Median), num(e.Lo), num(e.Hi))
}

// delta formats a comparison benchstat's way: the change of the median
// ("+5.2%", "−6.1%") when the U test calls it significant, "~" when it
// does not.
func delta(c stats.Comparison) string {
	switch {
	case c.N1 == 0 || c.N2 == 0:
		return dash
	case !c.Significant:
		return "~"
	case c.Ratio == 0:
		return "?"
	}
	return signed(100*(c.Ratio-1)) + "%"
}

// Numbers and text.

const dash = "–"

// num formats v to about three significant figures: 12345 → "12345",
// 123.4 → "123", 12.34 → "12.3", 1.5 → "1.5", 0.01234 → "0.0123".
func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return dash
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// short is num with k and M for large values, for labels on bars.
func short(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return num(v/1e6) + "M"
	case a >= 1e4:
		return num(v/1e3) + "k"
	}
	return num(v)
}

func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// firstLine is s's first line, cut to limit runes.
func firstLine(s string, limit int) string {
	s = strings.TrimSpace(s)
	cut := false
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s, cut = strings.TrimSpace(s[:i]), true
	}
	if rs := []rune(s); len(rs) > limit {
		s, cut = string(rs[:limit]), true
	}
	if cut {
		s += "…"
	}
	return s
}

// startedLayout dates a run in titles and in lab compare's table.
const startedLayout = "2006-01-02 15:04"

func (r *Report) title() string {
	return "wslab lab report, " + r.Started.Format(startedLayout)
}

// about says where and when the lab ran, and for how long.
func (r *Report) about() string {
	m := r.Machine
	parts := []string{
		r.Started.Format("2006-01-02 15:04:05 MST"),
		m.String(),
		fmt.Sprintf("%d rounds", r.Rounds),
		"total " + seconds(r.Seconds),
	}
	if r.ConfigPath != "" {
		parts = append(parts, "config "+r.ConfigPath)
	}
	return strings.Join(parts, " · ")
}

// String says what the machine is: "2 CPUs (AMD EPYC 7B13), linux/amd64,
// go1.26.0, kernel 6.1.0".
func (m Machine) String() string {
	s := fmt.Sprintf("%d CPUs", m.CPUs)
	if m.CPUModel != "" {
		s += " (" + m.CPUModel + ")"
	}
	s += ", " + m.OS + ", " + m.GoVersion
	if m.Kernel != "" {
		s += ", kernel " + m.Kernel
	}
	return s
}

// columnsNote explains the tables' columns.
func (r *Report) columnsNote() string {
	s := fmt.Sprintf("Every figure is the median of %d rounds; ± is its 95 %% confidence interval's larger half-width", r.Rounds)
	if need := stats.MinTrialsForInterval(); r.Rounds < need {
		s += fmt.Sprintf(" (∞: %d rounds are too few, %d are needed)", r.Rounds, need)
	}
	s += ". vs inproc is the change from inproc's median under the same load when the Mann-Whitney U test " +
		"calls it significant at α = 0.05, ~ when it does not"
	if need := stats.MinTrialsForSignificance(); r.Rounds < need {
		s += fmt.Sprintf(" (with %d rounds it never can: %d are needed)", r.Rounds, need)
	}
	return s + ". tasks/s counts right results per second; latencies are over all task kinds; errors adds up " +
		"error replies, wrong results, missing replies and failed connections over every round; CPU µs/task, " +
		"peak RSS and processes add up the host, its plugin and every worker process; queue µs and run µs are " +
		"the mean time a task waited inside the host and ran (JSON loads only)."
}

// hostTable is what each strategy's hosts counted themselves under the
// scenario, from their /metrics; nil when no host's metrics were asked
// for.
func (r *Report) hostTable(scenario string) *table {
	names, results := r.scenarioResults(scenario)
	if !slices.ContainsFunc(results, func(res *Result) bool { return res != nil && res.Host != nil }) {
		return nil
	}
	t := &table{Header: []string{"strategy", "host tasks", "host − client", "not ok", "queue p50 / p99 ms",
		"run p50 / p99 ms", "plugin restarts", "worker restarts", "refused", "closed"}}
	pair := func(a, b stats.Estimate) string {
		if a.N() == 0 {
			return dash
		}
		return num(a.Median) + " / " + num(b.Median)
	}
	restarts := func(n *int64) string {
		if n == nil {
			return dash
		}
		return strconv.FormatInt(*n, 10)
	}
	for i, res := range results {
		row := tableRow{Strategy: names[i]}
		switch {
		case res == nil || !measured(res):
			row.Note = dash
		case res.Host == nil && r.isContender(names[i]):
			row.Note = "an outside server: no /metrics"
		case res.Host == nil:
			row.Note = dash
		case res.Host.Rounds == 0:
			row.Note = "not read: " + firstLine(res.Host.Unread, 120)
		default:
			h := res.Host
			tasks := estimate(h.Tasks)
			if n := len(trialsOf(res)); h.Rounds < n {
				tasks += fmt.Sprintf(" (%d of %d rounds)", h.Rounds, n)
			}
			row.Cells = []string{tasks, strconv.FormatInt(h.Unmatched, 10), counts(h.NotOK),
				pair(h.QueueP50, h.QueueP99), pair(h.RunP50, h.RunP99),
				restarts(h.PluginRestarts), restarts(h.WorkerRestarts), counts(h.Refused), counts(h.Closed)}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// counts is "client 400, idle_timeout 2" in the order of the keys, "0"
// for none.
func counts(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// isContender says whether the strategy is an outside server.
func (r *Report) isContender(name string) bool {
	return slices.ContainsFunc(r.Contenders, func(c Contender) bool { return c.Name == name })
}

// hostTableTitle introduces hostTable.
const hostTableTitle = "What the host counted itself, from its /metrics before and after each run"

// hostNote explains hostTable's columns and says which rounds' metrics
// could not be read, and why.
func (r *Report) hostNote(scenario string) string {
	names, results := r.scenarioResults(scenario)
	var unread []string
	for i, res := range results {
		if res != nil && res.Host != nil && res.Host.Unread != "" && res.Host.Rounds > 0 {
			unread = append(unread, names[i]+", "+firstLine(res.Host.Unread, 160))
		}
	}
	note := hostColumnsNote
	if len(unread) > 0 {
		note += " Not read: " + strings.Join(unread, "; ") + "."
	}
	return note
}

// hostColumnsNote explains hostTable's columns.
const hostColumnsNote = "host tasks is the median of the requests the host answered per round; host − client adds up, over the rounds, " +
	"its count minus the replies the client counted (0: the two agree); not ok adds up its answers other than a result, " +
	"by code; queue and run are the medians of its histograms' p50 and p99 over all kinds, interpolated within their " +
	"buckets as Prometheus's histogram_quantile does (so no finer than 50 µs); restarts and connections refused (503) " +
	"and closed, by reason, add up over the rounds."

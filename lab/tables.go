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

	"github.com/wslab/wslab/client"
)

// tableHeader names the columns of a scenario's table.
var tableHeader = []string{"strategy", "tasks/s", "×inproc", "p50 ms", "p90 ms", "p99 ms", "max ms",
	"errors", "CPU s", "peak RSS MB", "processes"}

// tableRow is one strategy's line in a scenario's table: Cells (one per
// tableHeader column after the strategy), or why there are none: Failed
// (the first line of Result.Failed) or a Note ("no result").
type tableRow struct {
	Strategy string
	Cells    []string
	Failed   string
	Note     string
}

// kindTable is a scenario's latency per task kind: "p50 / p99" ms cells.
type kindTable struct {
	Kinds []string
	Rows  []tableRow
}

// failure is a strategy that failed under a scenario, and why.
type failure struct {
	Strategy, Scenario, Reason string
}

// strategyNames is r.Strategies followed by any strategy that only appears
// in r.Results.
func (r *Report) strategyNames() []string {
	names := slices.Clone(r.Strategies)
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	for _, res := range r.Results {
		if !seen[res.Strategy] {
			seen[res.Strategy] = true
			names = append(names, res.Strategy)
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
		for j := range r.Results {
			if res := &r.Results[j]; res.Strategy == n && res.Scenario == scenario {
				results[i] = res
			}
		}
	}
	return names, results
}

// failures lists every failed result, in report order.
func (r *Report) failures() []failure {
	var out []failure
	for _, res := range r.Results {
		if res.Failed != "" {
			out = append(out, failure{res.Strategy, res.Scenario, res.Failed})
		}
	}
	return out
}

// measured says whether res has figures worth showing.
func measured(res *Result) bool {
	return res != nil && res.Failed == "" && res.Summary != nil
}

// overall is res's latency over all task kinds.
func overall(res *Result) (client.Percentiles, bool) {
	if !measured(res) {
		return client.Percentiles{}, false
	}
	if p, ok := res.Summary.Latency["all"]; ok {
		return p, true
	}
	if len(res.Summary.Latency) == 1 {
		for _, p := range res.Summary.Latency {
			return p, true
		}
	}
	return client.Percentiles{}, false
}

// errorCount is every reply that was not right, plus failed connections.
func errorCount(s *client.Summary) int64 {
	return s.TotalErrors() + s.Wrong + s.Missing + s.ConnFailures
}

func (r *Report) rows(scenario string) []tableRow {
	names, results := r.scenarioResults(scenario)
	var rows []tableRow
	for i, res := range results {
		row := tableRow{Strategy: names[i]}
		switch {
		case res == nil:
			row.Note = "no result"
		case res.Failed != "":
			row.Failed = firstLine(res.Failed, 120)
		case res.Summary == nil:
			row.Note = "no measurements"
		default:
			s := res.Summary
			lat := []string{dash, dash, dash, dash}
			if p, ok := overall(res); ok {
				lat = []string{num(p.P50), num(p.P90), num(p.P99), num(p.Max)}
			}
			row.Cells = append(append([]string{num(s.Throughput), ratio(res.RelThroughput)}, lat...),
				strconv.FormatInt(errorCount(s), 10), num(res.CPUSeconds), num(res.PeakRSSMB),
				strconv.Itoa(res.Processes))
		}
		rows = append(rows, row)
	}
	return rows
}

// kinds builds the per-task-kind latency table of a scenario; nil when the
// scenario has a single kind (the main table already says it all).
func (r *Report) kinds(scenario string) *kindTable {
	names, results := r.scenarioResults(scenario)
	set := map[string]bool{}
	for _, res := range results {
		if measured(res) {
			for k := range res.Summary.Latency {
				if k != "all" {
					set[k] = true
				}
			}
		}
	}
	if len(set) < 2 {
		return nil
	}
	t := &kindTable{Kinds: slices.Sorted(maps.Keys(set))}
	for i, res := range results {
		row := tableRow{Strategy: names[i]}
		if !measured(res) {
			row.Note = dash
		} else {
			for _, k := range t.Kinds {
				cell := dash
				if p, ok := res.Summary.Latency[k]; ok {
					cell = num(p.P50) + " / " + num(p.P99)
				}
				row.Cells = append(row.Cells, cell)
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
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

// ratio formats a relative figure; 0 means unknown.
func ratio(v float64) string {
	if v == 0 {
		return dash
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

func (r *Report) title() string {
	return "wslab lab report, " + r.Started.Format("2006-01-02 15:04")
}

// about says where and when the lab ran, and for how long.
func (r *Report) about() string {
	m := r.Machine
	parts := []string{
		r.Started.Format("2006-01-02 15:04:05 MST"),
		fmt.Sprintf("%d CPUs, %s, %s", m.CPUs, m.OS, m.GoVersion),
	}
	if m.Kernel != "" {
		parts[1] += ", kernel " + m.Kernel
	}
	parts = append(parts, "total "+seconds(r.Seconds))
	if r.ConfigPath != "" {
		parts = append(parts, "config "+r.ConfigPath)
	}
	return strings.Join(parts, " · ")
}

const columnsNote = "tasks/s counts right results per second; ×inproc is that relative to inproc " +
	"under the same load; latencies are over all task kinds; errors counts error replies, wrong " +
	"results, missing replies and failed connections; CPU s, peak RSS and processes add up the " +
	"host, its plugin and every worker process."

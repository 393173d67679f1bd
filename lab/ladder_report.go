package lab

// The ladder's tables, notes, charts and verdict, for report.md and
// report.html alike.

import (
	"fmt"
	"maps"
	"math"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/wcharczuk/go-chart/v2/drawing"

	"github.com/wslab/wslab/internal/attackrecord"
	"github.com/wslab/wslab/lab/stats"
)

// ladderHeader names the ladder table's columns.
var ladderHeader = []string{"rung", "noop round trip µs", "noop over inproc µs", "cpu throughput vs inproc",
	"fib round trip ms", "io round trip ms", "memory per worker MB", "memory of", "start-up ms", "started after a kill of",
	"attacks stopped"}

// ladderTable is the ladder, a row per rung that ran; nil without it.
func (r *Report) ladderTable() *table {
	lad := r.Ladder
	if lad == nil || len(lad.Rows) == 0 {
		return nil
	}
	t := &table{ID: "ladder", Header: ladderHeader}
	for _, row := range lad.Rows {
		tr := tableRow{Strategy: rungName(row.Rung)}
		if row.NoopUS.N() == 0 {
			if row.Failed != "" {
				tr.Failed = firstLine(row.Failed, 120)
			} else {
				tr.Note = "no measurements"
			}
			t.Rows = append(t.Rows, tr)
			continue
		}
		over, cpu := dash, dash
		switch {
		case row.Rung == "inproc":
			over, cpu = "0 (the base)", "1 (the base)"
		default:
			if row.NoopOverInprocUS != nil {
				over = estimate(*row.NoopOverInprocUS)
			}
			if row.CPUVsInproc != nil {
				cpu = ratio(*row.CPUVsInproc)
			}
		}
		startup, replaced := estimate(row.StartupMS), row.Replaced
		switch {
		case row.Replaced == "" && row.StartupFailed == "":
			startup, replaced = dash, "nothing: tasks run in the host"
		case row.StartupMS.N() == 0 && row.StartupFailed != "":
			startup = "failed"
		}
		tr.Cells = []string{
			estimate(row.NoopUS), over, cpu, estimate(row.FibMS), estimate(row.IOMS),
			estimate(row.MemoryMB), row.MemoryOf, startup, replaced, r.attackCell(row.Rung),
		}
		t.Rows = append(t.Rows, tr)
	}
	return t
}

// ratio formats an estimate of a ratio: "0.97× ±2%".
func ratio(e stats.Estimate) string {
	s := estimate(e)
	if e.N() == 0 {
		return s
	}
	m := num(e.Median)
	return m + "×" + strings.TrimPrefix(s, m)
}

// rungName is how the ladder names a rung: "multiproc strict".
func rungName(rung string) string {
	if rung == strictRung {
		return "multiproc strict"
	}
	return rung
}

// attackCell is how many of the recorded attacks the rung stopped, and
// the record it comes from.
func (r *Report) attackCell(rung string) string {
	rec, ok := r.Ladder.Attacks[rung]
	if !ok {
		return "not recorded"
	}
	s := fmt.Sprintf("%d of %d (%s, %s)", rec.Stopped(), len(rec.Attacks), rec.Test, rec.Recorded.Format("2006-01-02"))
	if !rec.Passed {
		s += ", the test failed"
	}
	return s
}

// attacksTable is, for each rung the attack tests recorded, what each
// attack got; nil when none was recorded.
func (r *Report) attacksTable() *table {
	lad := r.Ladder
	if lad == nil || len(lad.Attacks) == 0 {
		return nil
	}
	var rungs []string
	for _, rung := range ladderRungs {
		if _, ok := lad.Attacks[rung]; ok {
			rungs = append(rungs, rung)
		}
	}
	for _, rung := range slices.Sorted(maps.Keys(lad.Attacks)) {
		if !slices.Contains(rungs, rung) {
			rungs = append(rungs, rung)
		}
	}
	// The attacks, in the order of their n, as any record lists them.
	var attacks []attackrecord.Outcome
	for _, rung := range rungs {
		for _, o := range lad.Attacks[rung].Attacks {
			if !slices.ContainsFunc(attacks, func(a attackrecord.Outcome) bool { return a.N == o.N }) {
				attacks = append(attacks, o)
			}
		}
	}
	slices.SortFunc(attacks, func(a, b attackrecord.Outcome) int { return int(a.N - b.N) })
	t := &table{ID: "attacks", Header: []string{"rung"}}
	for _, a := range attacks {
		t.Header = append(t.Header, a.Attack)
	}
	for _, rung := range rungs {
		rec := lad.Attacks[rung]
		tr := tableRow{Strategy: rungName(rung)}
		for _, a := range attacks {
			cell := "not run"
			if i := slices.IndexFunc(rec.Attacks, func(o attackrecord.Outcome) bool { return o.N == a.N }); i >= 0 {
				o := rec.Attacks[i]
				cell = "succeeded"
				if o.Stopped() {
					cell = "stopped: " + o.Code
				}
				if o.Effect != "" {
					cell += " (" + o.Effect + ")"
				}
			}
			tr.Cells = append(tr.Cells, cell)
		}
		t.Rows = append(t.Rows, tr)
	}
	return t
}

// ladderNotes say what the ladder's columns measured, which rungs were
// left out and why, and where the attacks column comes from.
func (r *Report) ladderNotes() []string {
	lad := r.Ladder
	if lad == nil {
		return nil
	}
	notes := []string{
		"Round trips are the p50 of one task at a time on one connection (noop, fib, io in turn, the tasks' default sizes), medians over the rounds; " +
			"noop over inproc and cpu throughput vs inproc (the cpu scenario's) are taken round by round against inproc in the same round, then their median.",
		"Memory per worker is the resident memory of one process that runs tasks, at rest after the warm-up: the median worker process where the rung has workers, " +
			"the plugin process where tasks run inside it (pool, wasm: its every instance or goroutine together), the host process for inproc.",
		fmt.Sprintf("Start-up is measured, not estimated: after the round's other scenarios, the processes that run tasks are killed with SIGKILL and noops are sent every %s "+
			"until one is answered right, which only a replacement can do; it includes the supervisor's %s wait before a first restart, the process's start, "+
			"its handshake, sandbox and readiness, and the first task.", probeEvery, restartBackoff),
	}
	for _, row := range lad.Rows {
		if row.About != "" {
			notes = append(notes, fmt.Sprintf("%s is %s.", rungName(row.Rung), row.About))
		}
		if row.Sandbox != "" {
			notes = append(notes, fmt.Sprintf("%s: its workers ran under %s (the host's /stats).", rungName(row.Rung), row.Sandbox))
		} else if v, ok := variants[row.Rung]; ok && strings.Contains(v.Config, "sandbox") {
			notes = append(notes, fmt.Sprintf("%s: the host's /stats named no sandbox for its workers.", rungName(row.Rung)))
		}
		if row.StartupFailed != "" {
			notes = append(notes, fmt.Sprintf("%s: start-up not measured in %s", rungName(row.Rung), row.StartupFailed))
		}
	}
	for _, s := range lad.Skipped {
		notes = append(notes, fmt.Sprintf("%s is left out: %s.", rungName(s.Rung), s.Why))
	}
	if !slices.ContainsFunc(r.Scenarios, func(sc Scenario) bool { return sc.Name == scenarioCPU }) {
		notes = append(notes, "cpu throughput vs inproc comes from the cpu scenario, which this run did not have.")
	}
	notes = append(notes, r.attacksNote())
	return notes
}

// attacksNote says where the attacks column comes from.
func (r *Report) attacksNote() string {
	lad := r.Ladder
	s := "Attacks: the test-only attack tasks (internal/attacks: read /etc/passwd, read and write a file outside the data directory, " +
		"connect to a loopback listener, start a process, allocate past the memory cap, loop past the deadline) are never in what make build ships, " +
		"so the lab cannot run them; the column is what the end-to-end attack tests saw and recorded in " + lad.AttacksDir +
		" (go test ./internal/e2e -run Attacks writes it). An attack counts as stopped when it got an error reply."
	if lad.AttacksError != "" {
		s += " The records could not all be read: " + lad.AttacksError + "."
	}
	if len(lad.Attacks) == 0 {
		return s + " No record was found: the column says not recorded."
	}
	var cited []string
	for _, rung := range slices.Sorted(maps.Keys(lad.Attacks)) {
		rec := lad.Attacks[rung]
		c := fmt.Sprintf("%s by %s on %s", rungName(rung), rec.Test, rec.Recorded.Format("2006-01-02 15:04 MST"))
		if rec.Kernel != "" {
			c += ", kernel " + rec.Kernel
			if r.Machine.Kernel != "" && rec.Kernel != r.Machine.Kernel {
				c += " (not this run's kernel)"
			}
		}
		if rec.Commit != "" {
			c += ", commit " + rec.Commit
		}
		if !rec.Passed {
			c += ", and the test failed"
		}
		cited = append(cited, c)
	}
	s += " Recorded: " + strings.Join(cited, "; ") + "."
	if rev := labRevision(); rev != "" {
		s += " This lab was built from " + rev + "."
	}
	notTested := []string{}
	for _, row := range lad.Rows {
		if _, ok := lad.Attacks[row.Rung]; !ok {
			notTested = append(notTested, rungName(row.Rung))
		}
	}
	if len(notTested) > 0 {
		s += " No test has recorded the attacks on " + strings.Join(notTested, ", ") + "."
	}
	return s
}

// labRevision is the commit the lab binary was built from, when its build
// says.
func labRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return "commit " + rev + dirty
}

// ladderVerdict sums the ladder up: each rung's noop round trip over
// inproc's, and what strict's sandbox costs over plain multiproc, round by
// round.
func (r *Report) ladderVerdict() string {
	lad := r.Ladder
	if lad == nil || len(lad.Rows) == 0 {
		return "no rung measured"
	}
	var parts []string
	for _, row := range lad.Rows {
		if row.NoopOverInprocUS != nil {
			parts = append(parts, fmt.Sprintf("%s %s µs", rungName(row.Rung), signed(row.NoopOverInprocUS.Median)))
		}
	}
	s := "a noop's round trip over inproc's in the same round: " + strings.Join(parts, ", ")
	if len(parts) == 0 {
		s = "no rung's round trip could be set against inproc's"
	}
	for _, row := range lad.Rows {
		if row.NoopOverBaseUS != nil {
			s += fmt.Sprintf("; %s adds %s µs to %s's noop round trip", rungName(row.Rung), signed(row.NoopOverBaseUS.Median), pluginOf(row.Rung))
			if e := row.StartupOverBaseMS; e != nil {
				s += fmt.Sprintf(" and %s ms to its start-up", signed(e.Median))
			}
			s += fmt.Sprintf(" (medians of %d rounds' differences)", row.NoopOverBaseUS.N())
		}
	}
	if len(lad.Skipped) > 0 {
		var left []string
		for _, sk := range lad.Skipped {
			left = append(left, rungName(sk.Rung))
		}
		s += "; left out: " + strings.Join(left, ", ")
	}
	return s
}

// ladderCharts are the ladder's bar charts, a bar per rung in its
// strategy's colour: noop round trip, memory per worker and start-up.
func (r *Report) ladderCharts() ([]figure, error) {
	lad := r.Ladder
	if lad == nil || len(lad.Rows) == 0 {
		return nil, nil
	}
	names := r.strategyNames()
	var out []figure
	for _, k := range []struct {
		id, title, axis, caption string
		of                       func(LadderRow) stats.Estimate
	}{
		{"ladder-noop", "Isolation ladder: noop round trip", "µs",
			"A noop's round trip, one at a time, on each rung: median of the rounds and its 95 % interval (lower is better).",
			func(row LadderRow) stats.Estimate { return row.NoopUS }},
		{"ladder-memory", "Isolation ladder: memory per worker", "RSS MB",
			"Resident memory of one process that runs tasks, at rest after the warm-up (worker, plugin or host process, as the table says).",
			func(row LadderRow) stats.Estimate { return row.MemoryMB }},
		{"ladder-startup", "Isolation ladder: start-up", "ms",
			"From a SIGKILL of the processes that run tasks to a replacement's first right reply (inproc has none to kill).",
			func(row LadderRow) stats.Estimate { return row.StartupMS }},
	} {
		var cats []string
		var colors []drawing.Color
		s := barSeries{name: k.axis, label: short}
		for _, row := range lad.Rows {
			e := k.of(row)
			if e.N() == 0 {
				continue
			}
			cats = append(cats, rungName(row.Rung))
			colors = append(colors, strategyColor(max(0, slices.Index(names, row.Rung))))
			s.values = append(s.values, e.Median)
			lo, hi := math.NaN(), math.NaN()
			if e.Bounded {
				lo, hi = e.Lo, e.Hi
			}
			s.lo, s.hi = append(s.lo, lo), append(s.hi, hi)
		}
		if len(cats) == 0 {
			continue
		}
		s.color = func(i int) drawing.Color { return colors[i] }
		svg, err := barChart(k.title, k.axis, cats, false, s)
		if err != nil {
			return nil, fmt.Errorf("%s chart: %w", k.id, err)
		}
		out = append(out, figure{k.id, k.caption, svg})
	}
	return out, nil
}

package lab

// The verdict: the few lines report.md and report.html open with, written
// from the figures: per scenario the best strategy and by how much, or
// that the best do not differ significantly; each strategy's capacity; what
// isolation costs; where it ran.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/wslab/wslab/lab/stats"
)

// verdictLine is one line of the verdict: a topic (a scenario, capacity,
// the machine) and what the data say about it.
type verdictLine struct {
	Topic, Text string
}

func (r *Report) verdict() []verdictLine {
	var out []verdictLine
	if need := stats.MinTrialsForSignificance(); r.Rounds < need {
		out = append(out, verdictLine{"caution", fmt.Sprintf(
			"with %d rounds no difference can be called significant; the U test needs %d a side ([lab] rounds, --rounds)", r.Rounds, need)})
	}
	for _, sc := range r.Scenarios {
		switch sc.Name {
		case scenarioCapacity:
			if text := r.capacityVerdict(); text != "" {
				out = append(out, verdictLine{sc.Name, text})
			}
		case scenarioLadder:
			out = append(out, verdictLine{sc.Name, r.ladderVerdict()})
		default:
			out = append(out, verdictLine{sc.Name, r.scenarioVerdict(sc.Name)})
		}
	}
	if text := r.isolationVerdict(); text != "" {
		out = append(out, verdictLine{"isolation", text})
	}
	out = append(out, verdictLine{"machine", fmt.Sprintf("%s; %d rounds in %s", r.Machine, r.Rounds, seconds(r.Seconds))})
	return out
}

// figureOf is how a scenario ranks strategies: by throughput, or for the
// rtt scenario by the round trip (lower is better).
type figureOf struct {
	of          func(*Result) stats.Estimate
	lowerBetter bool
	format      func(float64) string
}

func rankFigure(scenario string) figureOf {
	if scenario == scenarioRTT {
		return figureOf{
			of:          func(r *Result) stats.Estimate { return r.P50.Scaled(1000) },
			lowerBetter: true,
			format:      func(v float64) string { return num(v) + " µs" },
		}
	}
	return figureOf{
		of:     func(r *Result) stats.Estimate { return r.Throughput },
		format: func(v float64) string { return num(v) + " tasks/s" },
	}
}

func (r *Report) scenarioVerdict(scenario string) string {
	fig := rankFigure(scenario)
	_, results := r.scenarioResults(scenario)
	var ranked, faulty []*Result
	for _, res := range results {
		switch {
		case !measured(res):
		case res.Errors > 0:
			faulty = append(faulty, res)
		default:
			ranked = append(ranked, res)
		}
	}
	slices.SortStableFunc(ranked, func(a, b *Result) int {
		c := cmp.Compare(fig.of(b).Median, fig.of(a).Median)
		if fig.lowerBetter {
			c = -c
		}
		return c
	})
	var b strings.Builder
	switch len(ranked) {
	case 0:
		b.WriteString("no strategy measured without errors")
	case 1:
		fmt.Fprintf(&b, "only %s measured without errors: %s", ranked[0].Strategy, fig.format(fig.of(ranked[0]).Median))
	default:
		best, behind := ranked[0], ranked[1:]
		next := behind[0]
		// One test of the next against the best says whether they tie
		// and, when they do not, by how much the best leads.
		c := stats.Compare(fig.of(next), fig.of(best))
		switch tied := tiedWith(fig, best, behind, c); {
		case r.Rounds < stats.MinTrialsForSignificance():
			fmt.Fprintf(&b, "%s leads at %s (too few rounds to call it significant)", best.Strategy, fig.format(fig.of(best).Median))
		case len(tied) > 0:
			names := []string{fmt.Sprintf("%s (%s)", best.Strategy, fig.format(fig.of(best).Median))}
			for _, res := range tied {
				names = append(names, fmt.Sprintf("%s (%s)", res.Strategy, fig.format(fig.of(res).Median)))
			}
			fmt.Fprintf(&b, "no significant difference between %s", andList(names))
			behind = behind[len(tied):]
		default:
			lead := c.Ratio // how many times better the best is
			if fig.lowerBetter && lead > 0 {
				lead = 1 / lead
			}
			fmt.Fprintf(&b, "%s is best at %s, %s ahead of the next, %s (p = %.3f)", best.Strategy, fig.format(fig.of(best).Median),
				times(lead), next.Strategy, c.P)
			behind = behind[1:]
		}
		if len(behind) > 0 {
			var names []string
			for _, res := range behind {
				names = append(names, fmt.Sprintf("%s %s", res.Strategy, times(fig.of(res).Median/fig.of(best).Median)))
			}
			fmt.Fprintf(&b, "; behind: %s %s", strings.Join(names, ", "), best.Strategy)
		}
	}
	for _, res := range faulty {
		fmt.Fprintf(&b, "; %s had %d errors", res.Strategy, res.Errors)
	}
	return b.String()
}

// tiedWith is the leading run of others (ranked best first) that the U
// test does not tell apart from best; first is the test of others[0]
// against best, made already.
func tiedWith(fig figureOf, best *Result, others []*Result, first stats.Comparison) []*Result {
	if first.Significant {
		return nil
	}
	n := 1
	for n < len(others) && !stats.Compare(fig.of(others[n]), fig.of(best)).Significant {
		n++
	}
	return others[:n]
}

// times is a ratio as "1.06×".
func times(ratio float64) string { return num(ratio) + "×" }

// andList joins "a", "b" and "c" as "a, b and c".
func andList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func (r *Report) capacityVerdict() string {
	if len(r.Capacity) == 0 {
		return ""
	}
	caps := slices.Clone(r.Capacity)
	slices.SortStableFunc(caps, func(a, b Capacity) int { return cmp.Compare(b.Sustained, a.Sustained) })
	var some, none, top []string
	for _, c := range caps {
		if c.Sustained > 0 {
			some = append(some, c.Strategy+" "+capacityCell(&c))
		} else {
			none = append(none, c.Strategy)
		}
		if c.atTop() {
			top = append(top, c.Strategy)
		}
	}
	mix := ""
	if len(r.CapacityTasks) > 0 {
		mix = " of " + strings.Join(r.CapacityTasks, ", ")
	}
	text := fmt.Sprintf("highest rate%s sustained at p99 ≤ %s ms: ", mix, num(r.SLOP99MS))
	if len(some) > 0 {
		text += strings.Join(some, ", ")
	} else {
		text += "none"
	}
	if len(none) > 0 {
		text += "; " + andList(none) + " sustained none of the rates"
	}
	if len(top) > 0 {
		text += fmt.Sprintf("; %s/s is the highest rate offered, so %s may carry more ([lab] capacity_rates)",
			num(caps[0].Points[len(caps[0].Points)-1].Rate), andList(top))
	}
	return text
}

func (r *Report) isolationVerdict() string {
	_, results := r.scenarioResults(scenarioRTT)
	var parts []string
	for _, res := range results {
		if res == nil || res.IsolationUS == nil {
			continue
		}
		part := fmt.Sprintf("%s %s µs", res.Strategy, signed(res.IsolationUS.Median))
		if res.VsInproc != nil && !res.VsInproc.P50.Significant {
			part += " (~)"
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return ""
	}
	return "a noop round trip costs, over inproc's: " + strings.Join(parts, ", ")
}

// signed is v with its sign: "+45", "−3".
func signed(v float64) string {
	if v < 0 {
		return "−" + num(-v)
	}
	return "+" + num(v)
}

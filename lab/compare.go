package lab

// `lab compare OLD NEW`: two lab runs side by side, benchstat's way: each
// figure's medians and intervals, the change, and whether the U test calls
// it significant; and an HTML page that overlays the two runs' charts.

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/wcharczuk/go-chart/v2/drawing"

	"github.com/wslab/wslab/lab/stats"
)

// ReadReport reads a report.json that the lab wrote.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Rounds == 0 {
		return nil, fmt.Errorf("%s: not a report of this lab (no rounds)", path)
	}
	return &r, nil
}

// Comparison is two lab runs, figure by figure.
type Comparison struct {
	Old, New         *Report
	OldPath, NewPath string
	Rows             []CompareRow
}

// CompareRow is one figure of one strategy under one scenario in both runs.
type CompareRow struct {
	Scenario, Strategy, Figure string
	Old, New                   stats.Estimate
	Change                     stats.Comparison
}

// compareFigures are the figures compared, with how each is read off a
// result.
var compareFigures = []struct {
	name string
	of   func(*Result) stats.Estimate
}{
	{"tasks/s", func(r *Result) stats.Estimate { return r.Throughput }},
	{"p50 ms", func(r *Result) stats.Estimate { return r.P50 }},
	{"p99 ms", func(r *Result) stats.Estimate { return r.P99 }},
	{"CPU µs/task", func(r *Result) stats.Estimate { return r.CPUPerTask }},
}

// Compare lines up every figure the two runs share.
func Compare(old, new *Report) *Comparison {
	c := &Comparison{Old: old, New: new}
	for _, sc := range new.Scenarios {
		if sc.Name == scenarioCapacity {
			continue
		}
		for _, fig := range compareFigures {
			for _, st := range new.strategyNames() {
				o, n := old.result(st, sc.Name), new.result(st, sc.Name)
				if !measured(o) || !measured(n) {
					continue
				}
				c.add(sc.Name, st, fig.name, fig.of(o), fig.of(n))
			}
		}
		if sc.Name == scenarioRTT {
			for _, st := range new.strategyNames() {
				o, n := old.result(st, sc.Name), new.result(st, sc.Name)
				if o != nil && n != nil && o.IsolationUS != nil && n.IsolationUS != nil {
					c.add(sc.Name, st, "isolation µs", *o.IsolationUS, *n.IsolationUS)
				}
			}
		}
	}
	if len(new.Capacity) > 0 {
		for _, rate := range new.Capacity[0].rates() {
			for _, nc := range new.Capacity {
				np, op := nc.point(rate), old.capacityOf(nc.Strategy).point(rate)
				if np != nil && op != nil && np.ran() && op.ran() {
					c.add(scenarioCapacity, nc.Strategy, "p99 ms at "+num(rate)+"/s", op.P99, np.P99)
				}
			}
		}
	}
	return c
}

func (c *Comparison) add(scenario, strategy, figure string, old, new stats.Estimate) {
	c.Rows = append(c.Rows, CompareRow{scenario, strategy, figure, old, new, stats.Compare(old, new)})
}

// change is a row's verdict: "−6.5% (p=0.002 n=6+6)" or "~ (p=0.310 n=6+6)".
func (row CompareRow) change() string {
	return fmt.Sprintf("%s (p=%.3f n=%d+%d)", delta(row.Change), row.Change.P, row.Change.N1, row.Change.N2)
}

// WriteTable prints the comparison as benchstat does: per scenario and
// figure, a line per strategy.
func (c *Comparison) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "old: %s (%s, %d rounds)\nnew: %s (%s, %d rounds)\n",
		c.OldPath, c.Old.Started.Format(startedLayout), c.Old.Rounds,
		c.NewPath, c.New.Started.Format(startedLayout), c.New.Rounds)
	if c.Old.Machine != c.New.Machine {
		fmt.Fprintf(w, "machines differ: old %s; new %s\n", c.Old.Machine, c.New.Machine)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	last := ""
	for _, row := range c.Rows {
		if head := row.Scenario + " · " + row.Figure; head != last {
			fmt.Fprintf(tw, "\n%s\told\tnew\tvs old\n", head)
			last = head
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", row.Strategy, estimate(row.Old), estimate(row.New), row.change())
	}
	tw.Flush()
	var caps []string
	for _, nc := range c.New.Capacity {
		if oc := c.Old.capacityOf(nc.Strategy); oc != nil {
			caps = append(caps, fmt.Sprintf("  %s\t%s\t%s", nc.Strategy, capacityCell(oc), capacityCell(&nc)))
		}
	}
	if len(caps) > 0 {
		fmt.Fprintf(tw, "\ncapacity at p99 ≤ %s ms\told\tnew\n%s\n", num(c.New.SLOP99MS), strings.Join(caps, "\n"))
		tw.Flush()
	}
	fmt.Fprintf(w, "\n%s\n", compareNote)
}

const compareNote = "Medians of each run's rounds with the 95 % interval's half-width; vs old is the change of " +
	"the median when the Mann-Whitney U test calls it significant at α = 0.05, ~ when it does not."

//go:embed assets/compare.html.tmpl
var comparePageSource string

var comparePageTemplate = parsePage("compare.html", comparePageSource)

// comparePage is what assets/compare.html.tmpl draws.
type comparePage struct {
	Title, Old, New, Note string
	Machines              string // set when the machines differ
	FontFace              template.CSS
	Style                 template.CSS
	Strategies            []swatch
	Scenarios             []compareSection
}

type compareSection struct {
	Name   string
	Charts []figure
	Rows   []CompareRow
}

// Changes formats the section's rows for the page.
func (s compareSection) Changes() [][]string {
	var out [][]string
	for _, row := range s.Rows {
		out = append(out, []string{row.Strategy, row.Figure, estimate(row.Old), estimate(row.New), row.change()})
	}
	return out
}

// HTML is the comparison's page: per scenario the two runs' bars side by
// side (the old run lighter), the capacity curves overlaid (the old
// dashed), and the table of changes.
func (c *Comparison) HTML() ([]byte, error) {
	names := c.New.strategyNames()
	for _, n := range c.Old.strategyNames() {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	p := comparePage{
		Title:      "wslab lab comparison",
		Old:        fmt.Sprintf("old: %s · %s", c.OldPath, c.Old.about()),
		New:        fmt.Sprintf("new: %s · %s", c.NewPath, c.New.about()),
		Note:       compareNote,
		FontFace:   fontFace(),
		Style:      template.CSS(pageStyle),
		Strategies: swatches(names),
	}
	if c.Old.Machine != c.New.Machine {
		p.Machines = "The two runs were on different machines."
	}
	for _, sc := range c.New.Scenarios {
		sec := compareSection{Name: sc.Name}
		for _, row := range c.Rows {
			if row.Scenario == sc.Name {
				sec.Rows = append(sec.Rows, row)
			}
		}
		if sc.Name == scenarioCapacity {
			fig, err := c.capacityOverlay(names)
			if err != nil {
				return nil, err
			}
			if fig != nil {
				sec.Charts = append(sec.Charts, *fig)
			}
		} else {
			for _, fig := range compareFigures {
				f, err := c.barOverlay(sc.Name, fig.name, fig.of, names)
				if err != nil {
					return nil, err
				}
				if f != nil {
					sec.Charts = append(sec.Charts, *f)
				}
			}
		}
		if len(sec.Charts) > 0 || len(sec.Rows) > 0 {
			p.Scenarios = append(p.Scenarios, sec)
		}
	}
	var b bytes.Buffer
	if err := comparePageTemplate.Execute(&b, p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// barOverlay draws, per strategy, the old run's median (lighter) beside
// the new one's, each with its interval.
func (c *Comparison) barOverlay(scenario, figName string, of func(*Result) stats.Estimate, names []string) (*figure, error) {
	side := func(r *Report, light bool) barSeries {
		res := make([]*Result, len(names))
		for i, n := range names {
			res[i] = r.result(n, scenario)
		}
		s := barSeries{name: "new", color: strategyColor, label: short}
		if light {
			s.name, s.color = "old", func(i int) drawing.Color { return lighten(strategyColor(i)) }
		}
		s.values, s.lo, s.hi = estimates(res, of)
		return s
	}
	series := []barSeries{side(c.Old, true), side(c.New, false)}
	if !hasValues(series) {
		return nil, nil
	}
	svg, err := barChart(figName+": "+scenario, figName, names, false, series...)
	if err != nil {
		return nil, fmt.Errorf("%s chart of %s: %w", figName, scenario, err)
	}
	return &figure{slug(figName) + "-" + slug(scenario), fmt.Sprintf("%s, old run (light) beside new, medians and 95 %% intervals.", figName), svg}, nil
}

// capacityOverlay draws each strategy's p99 against the offered rate in
// both runs: the old dashed and lighter, the new solid with its capacity.
func (c *Comparison) capacityOverlay(names []string) (*figure, error) {
	if len(c.New.Capacity) == 0 {
		return nil, nil
	}
	var curves []curve
	var entries []legendEntry
	for i, n := range names {
		color := strategyColor(i)
		drawn := false
		if oc := c.Old.capacityOf(n); oc != nil {
			old := oc.curve(func(pt CapacityPoint) stats.Estimate { return pt.P99 })
			old.color, old.width, old.dashed = lighten(color), 1.5, true
			if len(old.xs) > 0 {
				curves, drawn = append(curves, old), true
			}
		}
		if nc := c.New.capacityOf(n); nc != nil {
			cur := nc.curve(func(pt CapacityPoint) stats.Estimate { return pt.P99 })
			cur.color, cur.width, cur.knee = color, 2, nc.Sustained
			if len(cur.xs) > 0 {
				curves, drawn = append(curves, cur), true
			}
		}
		if drawn {
			entries = append(entries, legendEntry{name: n, color: color})
		}
	}
	if len(curves) == 0 {
		return nil, nil
	}
	entries = append(entries, legendEntry{name: "old", color: mutedColor, dashed: true})
	svg, _, err := capacityPlot("p99 against offered rate, old and new", c.New.Capacity[0].rates(), c.New.SLOP99MS, curves, entries)
	if err != nil {
		return nil, fmt.Errorf("capacity overlay: %w", err)
	}
	return &figure{"capacity", "p99 latency against the offered rate: the old run dashed, the new solid with a ring on each capacity; the dotted line is the new run's SLO.", svg}, nil
}

// point is c's point at rate; nil when c is nil or never offered it.
func (c *Capacity) point(rate float64) *CapacityPoint {
	if c == nil {
		return nil
	}
	for i := range c.Points {
		if c.Points[i].Rate == rate {
			return &c.Points[i]
		}
	}
	return nil
}

// lighten mixes c halfway with white.
func lighten(c drawing.Color) drawing.Color {
	mix := func(v uint8) uint8 { return v + (255-v)/2 }
	return drawing.Color{R: mix(c.R), G: mix(c.G), B: mix(c.B), A: c.A}
}

// CompareMain is `lab compare OLD NEW`: OLD and NEW are report.json files
// (or the folders holding them).
func CompareMain(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("lab compare", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: lab compare [--html FILE] OLD/report.json NEW/report.json")
		fset.PrintDefaults()
	}
	page := fset.String("html", "", "where the overlaid charts go (default: compare.html beside NEW)")
	if err := fset.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return ExitOK
		}
		return ExitUsage
	}
	if fset.NArg() != 2 {
		fset.Usage()
		return ExitUsage
	}
	paths := []string{fset.Arg(0), fset.Arg(1)}
	var reports []*Report
	for i, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			paths[i] = filepath.Join(p, "report.json")
		}
		r, err := ReadReport(paths[i])
		if err != nil {
			fmt.Fprintf(stderr, "lab compare: %v\n", err)
			return ExitUsage
		}
		reports = append(reports, r)
	}
	c := Compare(reports[0], reports[1])
	c.OldPath, c.NewPath = paths[0], paths[1]
	c.WriteTable(stdout)
	if *page == "" {
		*page = filepath.Join(filepath.Dir(paths[1]), "compare.html")
	}
	data, err := c.HTML()
	if err == nil {
		err = os.WriteFile(*page, data, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "lab compare: write %s: %v\n", *page, err)
		return ExitFailed
	}
	fmt.Fprintf(stderr, "lab compare: charts in %s\n", *page)
	return ExitOK
}

package lab

// The charts of report.html and the palette that gives each strategy its colour.

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"math"
	"slices"
	"strconv"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"

	"github.com/wslab/wslab/lab/stats"
)

// Charts: per scenario, one bar chart over the strategies per chartKind
// that has data; then the isolation costs and the capacity curves.

// chartKind is one chart of every scenario: its bars, over the strategies,
// come from series.
type chartKind struct {
	id, title, axis, caption string
	series                   func(res []*Result) []barSeries
	stacked                  bool
}

// chartKinds are the charts of every scenario, in page order.
var chartKinds = []chartKind{
	{id: "throughput", title: "Throughput", axis: "tasks / s",
		caption: "Right results per second, median of the rounds; the whiskers span the 95 % interval (higher is better).",
		series:  perStrategy("tasks/s", func(r *Result) stats.Estimate { return r.Throughput })},
	{id: "latency", title: "Latency", axis: "ms",
		caption: "p50 and p99 latency over all task kinds, medians of the rounds with their 95 % intervals (lower is better).",
		series:  latencySeries},
	{id: "time", title: "Where the time goes", axis: "µs per task (mean)", stacked: true,
		caption: "A task's mean latency split into its wait inside the host for a slot, a goroutine or a worker (queue), its run, and the rest: the trip between client, host and strategy.",
		series:  timeSeries},
	{id: "cpu", title: "CPU per task", axis: "CPU µs per task",
		caption: "User + system CPU time of the host, its plugin and workers per right result (lower is better).",
		series:  perStrategy("CPU µs", func(r *Result) stats.Estimate { return r.CPUPerTask })},
	{id: "memory", title: "Peak memory", axis: "peak RSS (MB)",
		caption: "Largest resident memory of the host, its plugin and workers together (lower is better).",
		series:  perStrategy("RSS MB", func(r *Result) stats.Estimate { return r.PeakRSSMB })},
}

// charts are the scenario's figures in page order: the chart of its
// extraTable, then one per chartKind with data (none for capacity, whose
// curves say it all).
func (r *Report) charts(scenario string) ([]figure, error) {
	var out []figure
	var own func() (*figure, error)
	switch scenario {
	case scenarioCapacity:
		own = r.capacityChart
	case scenarioRTT:
		own = r.isolationChart
	}
	owns := []func() (*figure, error){own}
	if scenario == scenarioRTT {
		owns = append(owns, r.waterfallChart)
	}
	for _, own := range owns {
		if own == nil {
			continue
		}
		fig, err := own()
		if err != nil {
			return nil, err
		}
		if fig != nil {
			out = append(out, *fig)
		}
	}
	names, res := r.scenarioResults(scenario)
	if len(names) == 0 || scenario == scenarioCapacity {
		return out, nil
	}
	for _, k := range chartKinds {
		series := k.series(res)
		if !hasValues(series) {
			continue // e.g. no queue time in plain text
		}
		svg, err := barChart(k.title+": "+scenario, k.axis, names, k.stacked, series...)
		if err != nil {
			return nil, fmt.Errorf("%s chart: %w", k.id, err)
		}
		out = append(out, figure{k.id + "-" + slug(scenario), k.caption, svg})
	}
	return out, nil
}

func hasValues(series []barSeries) bool {
	for _, s := range series {
		for _, v := range s.values {
			if !math.IsNaN(v) {
				return true
			}
		}
	}
	return false
}

// perStrategy is a single series of one bar per strategy, in its colour,
// with its interval as whiskers.
func perStrategy(name string, f func(*Result) stats.Estimate) func([]*Result) []barSeries {
	return func(res []*Result) []barSeries {
		s := barSeries{name: name, color: strategyColor, label: short}
		s.values, s.lo, s.hi = estimates(res, f)
		return []barSeries{s}
	}
}

// latencySeries is p50 and p99 side by side for each strategy.
func latencySeries(res []*Result) []barSeries {
	var out []barSeries
	for i, pc := range []struct {
		name string
		of   func(*Result) stats.Estimate
	}{
		{"p50", func(r *Result) stats.Estimate { return r.P50 }},
		{"p99", func(r *Result) stats.Estimate { return r.P99 }},
	} {
		c := percentileColors[i]
		s := barSeries{name: pc.name, color: func(int) drawing.Color { return c }, label: short}
		s.values, s.lo, s.hi = estimates(res, pc.of)
		out = append(out, s)
	}
	return out
}

// timeSeries stacks, per strategy, the mean queue time, run time and the
// rest of the latency; nothing for loads whose replies carry no timings.
func timeSeries(res []*Result) []barSeries {
	queue, _, _ := estimates(res, func(r *Result) stats.Estimate { return r.QueueUS })
	run, _, _ := estimates(res, func(r *Result) stats.Estimate { return r.RunUS })
	mean, _, _ := estimates(res, func(r *Result) stats.Estimate { return r.MeanUS })
	rest := make([]float64, len(res))
	for i := range rest {
		rest[i] = mean[i] - queue[i] - run[i] // NaN where a part is unknown
		if rest[i] < 0 {
			rest[i] = 0 // the means come from different replies' counts
		}
	}
	var out []barSeries
	for i, part := range []struct {
		name   string
		values []float64
	}{{"queue", queue}, {"run", run}, {"rest", rest}} {
		c := timeColors[i]
		out = append(out, barSeries{name: part.name, values: part.values, color: func(int) drawing.Color { return c }})
	}
	return out
}

// estimates applies f to every measured result: medians, and the
// interval's bounds where there is one; NaN marks the others.
func estimates(res []*Result, f func(*Result) stats.Estimate) (mid, lo, hi []float64) {
	mid, lo, hi = nans(len(res)), nans(len(res)), nans(len(res))
	for i, r := range res {
		if !measured(r) {
			continue
		}
		e := f(r)
		mid[i] = median(e)
		if e.Bounded {
			lo[i], hi[i] = e.Lo, e.Hi
		}
	}
	return mid, lo, hi
}

func nans(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}

// isolationChart draws what each strategy's round trip adds to inproc's;
// nil without the rtt scenario.
func (r *Report) isolationChart() (*figure, error) {
	names, results := r.scenarioResults(scenarioRTT)
	var cats []string
	var costed []*Result
	var colors []drawing.Color
	for i, res := range results {
		if res == nil || res.IsolationUS == nil {
			continue
		}
		cats, costed = append(cats, names[i]), append(costed, res)
		colors = append(colors, strategyColor(i))
	}
	if len(cats) == 0 {
		return nil, nil
	}
	s := barSeries{name: "µs", label: short, color: func(i int) drawing.Color { return colors[i] }}
	s.values, s.lo, s.hi = estimates(costed, func(r *Result) stats.Estimate { return *r.IsolationUS })
	svg, err := barChart("Isolation cost per task", "µs over inproc's round trip", cats, false, s)
	if err != nil {
		return nil, fmt.Errorf("isolation chart: %w", err)
	}
	return &figure{"isolation", "A noop round trip (one at a time) minus inproc's in the same round: what each strategy's isolation costs per task, median and 95 % interval.", svg}, nil
}

var (
	// strategyPalette is Tableau 10: each strategy keeps its colour across charts.
	strategyPalette  = hexColors("4e79a7", "f28e2b", "59a14f", "e15759", "76b7b2", "edc948", "b07aa1", "ff9da7", "9c755f", "bab0ac")
	percentileColors = hexColors("9ecae1", "08306b")
	timeColors       = hexColors("f28e2b", "4e79a7", "bab0ac")
	whiskerColor     = drawing.ColorFromHex("222222")
	textColor        = drawing.ColorFromHex("333333")
	mutedColor       = drawing.ColorFromHex("777777")
	gridColor        = drawing.ColorFromHex("e4e4e4")
	failedColor      = drawing.ColorFromHex("a12a2a")
)

func hexColors(hex ...string) []drawing.Color {
	out := make([]drawing.Color, len(hex))
	for i, h := range hex {
		out[i] = drawing.ColorFromHex(h)
	}
	return out
}

func strategyColor(i int) drawing.Color { return strategyPalette[i%len(strategyPalette)] }

const (
	chartWidth  = 540
	chartHeight = 330
)

// barChart renders bars for every series over the categories as an SVG
// element: grouped side by side when there are several series, or stacked
// one on another.
func barChart(title, yName string, categories []string, stacked bool, series ...barSeries) (template.HTML, error) {
	top := 0.0
	xTicks := []chart.Tick{{Value: -0.5}}
	for i, c := range categories {
		xTicks = append(xTicks, chart.Tick{Value: float64(i), Label: svgText(c)})
	}
	// The end ticks make the x range hold half a category either side.
	xTicks = append(xTicks, chart.Tick{Value: float64(len(categories)) - 0.5})
	all := make([]chart.Series, len(series))
	base := make([]float64, len(categories))
	for i := range series {
		s := &series[i]
		s.slot, s.slots, s.first = i, len(series), i == 0
		if stacked {
			s.slot, s.slots, s.base = 0, 1, slices.Clone(base)
		}
		for j, v := range s.values {
			if math.IsNaN(v) {
				continue
			}
			top = max(top, v)
			if j < len(s.hi) && !math.IsNaN(s.hi[j]) {
				top = max(top, s.hi[j])
			}
			if stacked {
				base[j] += v
				top = max(top, base[j])
			}
		}
		all[i] = *s
	}
	padTop := 14
	if len(series) > 1 {
		padTop = 34 // room for the legend
	}
	c := chart.Chart{
		Title:      svgText(title),
		TitleStyle: chart.Style{FontSize: 13, FontColor: textColor},
		Width:      chartWidth,
		Height:     chartHeight,
		Background: chart.Style{Padding: chart.Box{Top: 22 + padTop, Left: 16, Right: 12, Bottom: 8}},
		Canvas:     chart.Style{StrokeColor: drawing.ColorWhite},
		XAxis: chart.XAxis{
			Name:      "strategy",
			NameStyle: chart.Style{FontColor: mutedColor},
			Ticks:     xTicks,
			TickStyle: chart.Style{TextRotationDegrees: tickRotation(categories)},
			// No vertical grid lines.
			GridMajorStyle: chart.Hidden(),
			GridMinorStyle: chart.Hidden(),
		},
		// Unused, and drawn with nonsense ticks unless hidden.
		YAxisSecondary: chart.YAxis{Style: chart.Hidden()},
		YAxis:          valueAxis(yName, top),
		Series:         all,
	}
	if len(series) > 1 {
		entries := make([]legendEntry, len(series))
		for i, s := range series {
			entries[i] = legendEntry{name: s.name, color: s.color(0)}
		}
		c.Elements = []chart.Renderable{legend(entries)}
	}
	return render(c)
}

// valueAxis is a y axis from 0 to a little above top, with grid lines.
func valueAxis(name string, top float64) chart.YAxis {
	grid := chart.Style{StrokeColor: gridColor, StrokeWidth: 1}
	return chart.YAxis{
		Name:           svgText(name),
		NameStyle:      chart.Style{FontColor: mutedColor},
		Ticks:          yTicks(top),
		GridMajorStyle: grid,
		GridMinorStyle: grid,
	}
}

func render(c chart.Chart) (template.HTML, error) {
	var b bytes.Buffer
	if err := c.Render(chart.SVG, &b); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil
}

// tickRotation slants the category names when they are too wide to stand
// side by side under their bars.
func tickRotation(categories []string) float64 {
	r, err := chart.SVG(chartWidth, chartHeight)
	f, ferr := chart.GetDefaultFont()
	if err != nil || ferr != nil {
		return 0
	}
	r.SetFont(f)
	r.SetFontSize(chart.DefaultAxisFontSize)
	room := (chartWidth - 90) / max(len(categories), 1) // the plot is about 90 px narrower than the chart
	for _, c := range categories {
		if r.MeasureText(svgText(c)).Width()+8 > room {
			return 30
		}
	}
	return 0
}

// svgText escapes s for go-chart, which writes text into the SVG as is.
func svgText(s string) string { return html.EscapeString(s) }

// yTicks are round values from 0 to a little above top.
func yTicks(top float64) []chart.Tick {
	if !(top > 0) || math.IsInf(top, 0) {
		top = 1
	}
	top *= 1.12 // headroom for the labels on the bars
	raw := top / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	unit, suffix := 1.0, ""
	switch {
	case step >= 1e6:
		unit, suffix = 1e6, "M"
	case step >= 1e3 && top >= 1e4:
		unit, suffix = 1e3, "k"
	}
	decimals := max(0, -int(math.Floor(math.Log10(step/unit)+1e-9)))
	var ticks []chart.Tick
	for i := 0; ; i++ {
		v := float64(i) * step
		label := "0"
		if i > 0 {
			label = strconv.FormatFloat(v/unit, 'f', decimals, 64) + suffix
		}
		ticks = append(ticks, chart.Tick{Value: v, Label: label})
		if v >= top-step*1e-9 {
			return ticks
		}
	}
}

// barSeries is a go-chart Series drawing one bar per category; the
// barSeries of one chart stand side by side (slot of slots) in each
// category, or on top of the ones before (base). A NaN value draws no bar;
// the chart's first series writes "no data" where it has no value.
type barSeries struct {
	name   string
	values []float64
	// lo and hi, when set, draw a whisker over each bar (NaN: none).
	lo, hi      []float64
	base        []float64 // where each bar starts; nil: at 0
	color       func(category int) drawing.Color
	label       func(float64) string // the value written above each bar; nil: none
	slot, slots int
	first       bool // the chart's first series: it marks the empty categories
}

func (s barSeries) GetName() string           { return s.name }
func (s barSeries) GetYAxis() chart.YAxisType { return chart.YAxisPrimary }
func (s barSeries) GetStyle() chart.Style     { return chart.Style{} }
func (s barSeries) Validate() error           { return nil }

func (s barSeries) Render(r chart.Renderer, box chart.Box, xr, yr chart.Range, defaults chart.Style) {
	step := xr.Translate(1) - xr.Translate(0)
	group := step * 4 / 5
	width := group / max(s.slots, 1)
	text := chart.Style{Font: defaults.Font, FontSize: 8, FontColor: textColor}
	for i, v := range s.values {
		center := box.Left + xr.Translate(float64(i))
		left := center - group/2 + s.slot*width
		if math.IsNaN(v) {
			if s.first {
				style := chart.Style{Font: defaults.Font, FontSize: 10, FontColor: failedColor}
				tb := chart.Draw.MeasureText(r, "no data", style)
				chart.Draw.Text(r, "no data", center-tb.Width()/2, box.Bottom-box.Height()/4, style)
			}
			continue
		}
		from := 0.0
		if s.base != nil {
			from = s.base[i]
		}
		barTop, barBottom := box.Bottom-yr.Translate(from+v), box.Bottom-yr.Translate(from)
		c := s.color(i)
		if barBottom-barTop >= 1 {
			chart.Draw.Box(r, chart.Box{Top: barTop, Left: left + 1, Right: left + width - 1, Bottom: barBottom},
				chart.Style{FillColor: c, StrokeColor: c, StrokeWidth: 1})
		}
		labelAt := barTop
		if i < len(s.hi) && !math.IsNaN(s.hi[i]) && !math.IsNaN(s.lo[i]) {
			x, yLo, yHi := left+width/2, box.Bottom-yr.Translate(s.lo[i]), box.Bottom-yr.Translate(s.hi[i])
			w := chart.Style{StrokeColor: whiskerColor, StrokeWidth: 1}
			line(r, w, x, yLo, x, yHi)
			line(r, w, x-3, yLo, x+3, yLo)
			line(r, w, x-3, yHi, x+3, yHi)
			labelAt = min(labelAt, yHi)
		}
		if s.label == nil {
			continue
		}
		l := svgText(s.label(v))
		if tb := chart.Draw.MeasureText(r, l, text); tb.Width() <= width+2 {
			chart.Draw.Text(r, l, left+width/2-tb.Width()/2, labelAt-4, text)
		}
	}
}

// line draws a straight line in style.
func line(r chart.Renderer, style chart.Style, x0, y0, x1, y1 int) {
	style.WriteDrawingOptionsToRenderer(r)
	r.MoveTo(x0, y0)
	r.LineTo(x1, y1)
	r.Stroke()
}

// legendEntry is a swatch and a name; dashed draws the swatch as a dashed
// line (the p50 of the capacity chart).
type legendEntry struct {
	name   string
	color  drawing.Color
	dashed bool
}

// legend draws each entry in a row, centred above the plot.
func legend(entries []legendEntry) chart.Renderable {
	return func(r chart.Renderer, box chart.Box, defaults chart.Style) {
		style := chart.Style{Font: defaults.Font, FontSize: 9, FontColor: textColor}
		const square, gap, space = 10, 4, 14
		total := 0
		widths := make([]int, len(entries))
		for i, e := range entries {
			widths[i] = chart.Draw.MeasureText(r, svgText(e.name), style).Width()
			total += square + gap + widths[i]
		}
		total += space * (len(entries) - 1)
		x, y := box.Left+(box.Width()-total)/2, box.Top-22
		for i, e := range entries {
			if e.dashed {
				line(r, chart.Style{StrokeColor: e.color, StrokeWidth: 2, StrokeDashArray: []float64{3, 2}}, x, y+square/2, x+square, y+square/2)
			} else {
				chart.Draw.Box(r, chart.Box{Top: y, Left: x, Right: x + square, Bottom: y + square},
					chart.Style{FillColor: e.color, StrokeColor: e.color, StrokeWidth: 1})
			}
			chart.Draw.Text(r, svgText(e.name), x+square+gap, y+square-1, style)
			x += square + gap + widths[i] + space
		}
	}
}

// capacityChart draws each strategy's p99 (solid) and p50 (dashed) against
// the offered rate, the SLO as a grey line, and a ring on each strategy's
// capacity; nil without the capacity scenario.
func (r *Report) capacityChart() (*figure, error) {
	if len(r.Capacity) == 0 {
		return nil, nil
	}
	var curves []curve
	var entries []legendEntry
	for i, name := range r.strategyNames() {
		c := r.capacityOf(name)
		if c == nil {
			continue
		}
		color := strategyColor(i)
		p99, p50 := c.curve(func(pt CapacityPoint) stats.Estimate { return pt.P99 }), c.curve(func(pt CapacityPoint) stats.Estimate { return pt.P50 })
		if len(p99.xs) == 0 {
			continue
		}
		p99.color, p99.width, p99.knee = color, 2, c.Sustained
		p50.color, p50.width, p50.dashed = color, 1.5, true
		curves = append(curves, p99, p50)
		entries = append(entries, legendEntry{name: name, color: color})
	}
	if len(curves) == 0 {
		return nil, nil
	}
	entries = append(entries, legendEntry{name: "p50", color: mutedColor, dashed: true})
	svg, ceiling, err := capacityPlot("Latency against offered rate", r.Capacity[0].rates(), r.SLOP99MS, curves, entries)
	if err != nil {
		return nil, fmt.Errorf("capacity chart: %w", err)
	}
	return &figure{"capacity", fmt.Sprintf(
		"p99 (solid) and p50 (dashed) latency, medians of the rounds that offered each rate, from the intended send time; "+
			"the dotted line is the SLO (p99 ≤ %s ms), a ring marks each strategy's capacity; values above %s ms are drawn at the top.",
		num(r.SLOP99MS), num(ceiling)), svg}, nil
}

// curve is one line of a capacity chart: medians at the rates offered,
// and a ring at knee (the capacity) unless it is 0.
type curve struct {
	xs, ys []float64
	knee   float64
	color  drawing.Color
	width  float64
	dashed bool
}

// curve is c's medians of one figure at each rate that ran.
func (c *Capacity) curve(of func(CapacityPoint) stats.Estimate) curve {
	var out curve
	for _, pt := range c.Points {
		if pt.ran() {
			out.xs, out.ys = append(out.xs, pt.Rate), append(out.ys, of(pt).Median)
		}
	}
	return out
}

// rates are the offered rates, in order.
func (c *Capacity) rates() []float64 {
	out := make([]float64, len(c.Points))
	for i, pt := range c.Points {
		out[i] = pt.Rate
	}
	return out
}

// capacityPlot draws curves of latency against offered rate over the
// rates, with the SLO; values above the axis's top (ceiling, at most
// about 4× the SLO) are drawn at the top.
func capacityPlot(title string, rates []float64, slo float64, curves []curve, entries []legendEntry) (template.HTML, float64, error) {
	top := 1.25 * slo
	for _, c := range curves {
		for _, y := range c.ys {
			top = max(top, min(y, 4*slo))
		}
	}
	ticks := yTicks(top)
	ceiling := ticks[len(ticks)-1].Value
	lo, hi := rates[0], rates[len(rates)-1]
	if hi <= lo {
		hi = lo + 1
	}
	series := []chart.Series{chart.ContinuousSeries{Name: "SLO", XValues: []float64{lo, hi}, YValues: []float64{slo, slo},
		Style: chart.Style{StrokeColor: mutedColor, StrokeWidth: 1, StrokeDashArray: []float64{2, 3}}}}
	for _, c := range curves {
		ys := make([]float64, len(c.ys))
		kneeY := math.NaN()
		for i, y := range c.ys {
			ys[i] = min(y, ceiling)
			if c.xs[i] == c.knee {
				kneeY = ys[i]
			}
		}
		style := chart.Style{StrokeColor: c.color, StrokeWidth: c.width}
		if c.dashed {
			style.StrokeDashArray = []float64{4, 3}
		} else {
			style.DotColor, style.DotWidth = c.color, 2.5
		}
		series = append(series, chart.ContinuousSeries{XValues: c.xs, YValues: ys, Style: style})
		if !math.IsNaN(kneeY) {
			series = append(series,
				chart.ContinuousSeries{XValues: []float64{c.knee}, YValues: []float64{kneeY},
					Style: chart.Style{StrokeWidth: chart.Disabled, DotColor: c.color, DotWidth: 7}},
				chart.ContinuousSeries{XValues: []float64{c.knee}, YValues: []float64{kneeY},
					Style: chart.Style{StrokeWidth: chart.Disabled, DotColor: drawing.ColorWhite, DotWidth: 4}})
		}
	}
	var xTicks []chart.Tick
	for _, rate := range rates {
		xTicks = append(xTicks, chart.Tick{Value: rate, Label: short(rate)})
	}
	yAxis := valueAxis("latency (ms)", top)
	yAxis.Range = &chart.ContinuousRange{Min: 0, Max: ceiling}
	c := chart.Chart{
		Title:      svgText(title),
		TitleStyle: chart.Style{FontSize: 13, FontColor: textColor},
		Width:      2 * chartWidth,
		Height:     chartHeight + 60,
		Background: chart.Style{Padding: chart.Box{Top: 56, Left: 16, Right: 24, Bottom: 8}},
		Canvas:     chart.Style{StrokeColor: drawing.ColorWhite},
		XAxis: chart.XAxis{
			Name:           "offered rate (tasks / s)",
			NameStyle:      chart.Style{FontColor: mutedColor},
			Ticks:          xTicks,
			Range:          &chart.ContinuousRange{Min: lo, Max: hi},
			GridMajorStyle: chart.Hidden(),
			GridMinorStyle: chart.Hidden(),
		},
		YAxisSecondary: chart.YAxis{Style: chart.Hidden()},
		YAxis:          yAxis,
		Series:         append(series, unrotate{}),
		Elements:       []chart.Renderable{legend(entries)},
	}
	svg, err := render(c)
	return svg, ceiling, err
}

// unrotate is drawn last of the series: go-chart draws the title with the
// text rotation left by whatever drew text before, the y axis's name
// (turned 90°) when no series writes text.
type unrotate struct{}

func (unrotate) GetName() string           { return "" }
func (unrotate) GetYAxis() chart.YAxisType { return chart.YAxisPrimary }
func (unrotate) GetStyle() chart.Style     { return chart.Style{} }
func (unrotate) Validate() error           { return nil }
func (unrotate) Render(r chart.Renderer, _ chart.Box, _, _ chart.Range, _ chart.Style) {
	r.ClearTextRotation()
}

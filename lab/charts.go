package lab

// The charts of report.html and the palette that gives each strategy its colour.

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"

	"github.com/wslab/wslab/client"
)

// Charts: per scenario, one bar chart over the strategies per chartKind.

// chartKind is one chart of every scenario: its bars, over the strategies,
// come from series.
type chartKind struct {
	id, title, axis, caption string
	series                   func(res []*Result) []barSeries
}

// chartKinds are the charts of every scenario, in page order.
var chartKinds = []chartKind{
	{"throughput", "Throughput", "tasks / s", "Right results per second (higher is better).",
		perStrategy("tasks/s", func(r *Result) float64 { return r.Summary.Throughput })},
	{"latency", "Latency", "ms", "Latency percentiles over all task kinds (lower is better).", latencySeries},
	{"cpu", "CPU time", "CPU seconds", "User + system CPU time of the host, its plugin and workers (lower is better).",
		perStrategy("CPU s", func(r *Result) float64 { return r.CPUSeconds })},
	{"memory", "Peak memory", "peak RSS (MB)", "Largest resident memory of the host, its plugin and workers together (lower is better).",
		perStrategy("RSS MB", func(r *Result) float64 { return r.PeakRSSMB })},
}

func (r *Report) charts(scenario string) ([]figure, error) {
	names, res := r.scenarioResults(scenario)
	if len(names) == 0 {
		return nil, nil
	}
	var out []figure
	for _, k := range chartKinds {
		svg, err := barChart(k.title+": "+scenario, k.axis, names, k.series(res)...)
		if err != nil {
			return nil, fmt.Errorf("%s chart: %w", k.id, err)
		}
		out = append(out, figure{k.id + "-" + slug(scenario), k.caption, svg})
	}
	return out, nil
}

// perStrategy is a single series of one bar per strategy, in its colour.
func perStrategy(name string, f func(*Result) float64) func([]*Result) []barSeries {
	return func(res []*Result) []barSeries {
		return []barSeries{{name: name, values: values(res, f), color: strategyColor, label: short}}
	}
}

// latencySeries is p50, p90 and p99 side by side for each strategy.
func latencySeries(res []*Result) []barSeries {
	var out []barSeries
	for i, pc := range []struct {
		name string
		of   func(client.Percentiles) float64
	}{
		{"p50", func(p client.Percentiles) float64 { return p.P50 }},
		{"p90", func(p client.Percentiles) float64 { return p.P90 }},
		{"p99", func(p client.Percentiles) float64 { return p.P99 }},
	} {
		c := percentileColors[i]
		out = append(out, barSeries{
			name: pc.name,
			values: values(res, func(r *Result) float64 {
				if p, ok := overall(r); ok {
					return pc.of(p)
				}
				return math.NaN()
			}),
			color: func(int) drawing.Color { return c },
			label: short,
		})
	}
	return out
}

// values applies f to every measured result; NaN marks the others.
func values(res []*Result, f func(*Result) float64) []float64 {
	out := make([]float64, len(res))
	for i, r := range res {
		out[i] = math.NaN()
		if measured(r) {
			out[i] = f(r)
		}
	}
	return out
}

var (
	// strategyPalette is Tableau 10: each strategy keeps its colour across charts.
	strategyPalette  = hexColors("4e79a7", "f28e2b", "59a14f", "e15759", "76b7b2", "edc948", "b07aa1", "ff9da7", "9c755f", "bab0ac")
	percentileColors = hexColors("9ecae1", "4292c6", "08306b")
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

// barChart renders bars for every series over the categories (grouped when
// there are several series) as an SVG element.
func barChart(title, yName string, categories []string, series ...barSeries) (template.HTML, error) {
	top := 0.0
	xTicks := []chart.Tick{{Value: -0.5}}
	for i, c := range categories {
		xTicks = append(xTicks, chart.Tick{Value: float64(i), Label: svgText(c)})
	}
	// The end ticks make the x range hold half a category either side.
	xTicks = append(xTicks, chart.Tick{Value: float64(len(categories)) - 0.5})
	all := make([]chart.Series, len(series))
	for i := range series {
		series[i].slot, series[i].slots = i, len(series)
		for _, v := range series[i].values {
			if v > top {
				top = v
			}
		}
		all[i] = series[i]
	}
	padTop := 14
	if len(series) > 1 {
		padTop = 34 // room for the legend
	}
	grid := chart.Style{StrokeColor: gridColor, StrokeWidth: 1}
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
		YAxis: chart.YAxis{
			Name:           svgText(yName),
			NameStyle:      chart.Style{FontColor: mutedColor},
			Ticks:          yTicks(top),
			GridMajorStyle: grid,
			GridMinorStyle: grid,
		},
		Series: all,
	}
	if len(series) > 1 {
		c.Elements = []chart.Renderable{legend(series)}
	}
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
// category. A NaN value draws no bar; the first series then writes
// "failed" in its place.
type barSeries struct {
	name        string
	values      []float64
	color       func(category int) drawing.Color
	label       func(float64) string // the value written above each bar; nil: none
	slot, slots int
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
			if s.slot == 0 {
				style := chart.Style{Font: defaults.Font, FontSize: 10, FontColor: failedColor}
				tb := chart.Draw.MeasureText(r, "failed", style)
				chart.Draw.Text(r, "failed", center-tb.Width()/2, box.Bottom-box.Height()/4, style)
			}
			continue
		}
		barTop := box.Bottom - yr.Translate(v)
		c := s.color(i)
		chart.Draw.Box(r, chart.Box{Top: barTop, Left: left + 1, Right: left + width - 1, Bottom: box.Bottom},
			chart.Style{FillColor: c, StrokeColor: c, StrokeWidth: 1})
		if s.label == nil {
			continue
		}
		l := svgText(s.label(v))
		if tb := chart.Draw.MeasureText(r, l, text); tb.Width() <= width+2 {
			chart.Draw.Text(r, l, left+width/2-tb.Width()/2, barTop-4, text)
		}
	}
}

// legend draws a swatch and the name of each series in a row, centred
// above the plot.
func legend(series []barSeries) chart.Renderable {
	return func(r chart.Renderer, box chart.Box, defaults chart.Style) {
		style := chart.Style{Font: defaults.Font, FontSize: 9, FontColor: textColor}
		const square, gap, space = 10, 4, 16
		total := 0
		widths := make([]int, len(series))
		for i, s := range series {
			widths[i] = chart.Draw.MeasureText(r, svgText(s.name), style).Width()
			total += square + gap + widths[i]
		}
		total += space * (len(series) - 1)
		x, y := box.Left+(box.Width()-total)/2, box.Top-22
		for i, s := range series {
			c := s.color(0)
			chart.Draw.Box(r, chart.Box{Top: y, Left: x, Right: x + square, Bottom: y + square},
				chart.Style{FillColor: c, StrokeColor: c, StrokeWidth: 1})
			chart.Draw.Text(r, svgText(s.name), x+square+gap, y+square-1, style)
			x += square + gap + widths[i] + space
		}
	}
}

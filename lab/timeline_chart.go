package lab

// report.html's waterfall: one horizontal bar per strategy, its noop's
// round trip stacked in path order, a segment per run of spans of one
// kind.

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// waterfallHue is the colour of a part of the path: each link between two
// processes (both ways: a bar's segments are in path order, so which way
// is plain) in a blue, hatched; each process's own work in a warm colour;
// the task in green.
type waterfallHue struct {
	key, name string
	color     drawing.Color
	crossing  bool
}

var waterfallHues = []waterfallHue{
	{"client-host", "client – host", drawing.ColorFromHex("9ecae1"), true},
	{"host", "host’s work", drawing.ColorFromHex("f28e2b"), false},
	{"host-plugin", "host – plugin", drawing.ColorFromHex("4292c6"), true},
	{"host-worker", "host – worker", drawing.ColorFromHex("2171b5"), true},
	{"plugin", "plugin’s work", drawing.ColorFromHex("edc948"), false},
	{"plugin-worker", "plugin – worker", drawing.ColorFromHex("08519c"), true},
	{"worker", "worker’s work", drawing.ColorFromHex("e15759"), false},
	{"task", "the task", drawing.ColorFromHex("59a14f"), false},
	{"other", "other", drawing.ColorFromHex("bab0ac"), false},
}

// hueOf is the index in waterfallHues of a span kind's colour.
func hueOf(kind string) int {
	key := kind
	if from, to, ok := strings.Cut(kind, "→"); ok {
		procs := []string{from, to}
		order := []string{"client", "host", "plugin", "worker"}
		slices.SortFunc(procs, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) })
		key = procs[0] + "-" + procs[1]
	}
	if i := slices.IndexFunc(waterfallHues, func(h waterfallHue) bool { return h.key == key }); i >= 0 {
		return i
	}
	return len(waterfallHues) - 1
}

// segment is a run of consecutive spans whose kinds share a colour.
type segment struct {
	hue    int
	micros float64
}

// segments are a strategy's spans, in path order, merged where
// consecutive spans share a colour.
func segments(spans []Span) []segment {
	var out []segment
	for _, s := range spans {
		h := hueOf(s.Kind)
		if n := len(out); n > 0 && out[n-1].hue == h {
			out[n-1].micros += s.Micros
			continue
		}
		out = append(out, segment{h, s.Micros})
	}
	return out
}

// waterfallChart draws, per strategy, where a noop's round trip goes; nil
// when no strategy's rtt trials carried timelines.
func (r *Report) waterfallChart() (*figure, error) {
	names, results := r.scenarioResults(scenarioRTT)
	var cats []string
	var bars [][]segment
	for i, res := range results {
		if res == nil || len(res.Spans) == 0 {
			continue
		}
		cats, bars = append(cats, names[i]), append(bars, segments(res.Spans))
	}
	if len(cats) == 0 {
		return nil, nil
	}
	svg, err := waterfallSVG("Where a noop’s round trip goes", "µs from the client’s send to its read of the reply (medians)", cats, bars)
	if err != nil {
		return nil, fmt.Errorf("waterfall chart: %w", err)
	}
	return &figure{"waterfall", "One noop at a time, each asking for its timeline: the median time from each stage it passed to the next, " +
		"in path order from the client's send (left) to its read of the reply. Hatched blues are crossings from one process to another " +
		"(the kernel and the wake-up on the far side; one blue per pair of processes, out and back); warm colours are wslab's own work " +
		"in each process; green is the task. The table below has each kind of span and the stages it covers.", svg}, nil
}

const (
	waterfallWidth = 2 * chartWidth
	barHeight      = 18
	barPitch       = 28
)

// waterfallSVG renders the bars, a legend of the colours they use and a µs
// axis.
func waterfallSVG(title, axis string, cats []string, bars [][]segment) (template.HTML, error) {
	f, err := chart.GetDefaultFont()
	if err != nil {
		return "", err
	}
	styleOf := func(size float64, c drawing.Color) chart.Style {
		return chart.Style{Font: f, FontSize: size, FontColor: c}
	}
	// Measure first: the legend's rows and the names' column set the size.
	m, err := chart.SVG(waterfallWidth, 100)
	if err != nil {
		return "", err
	}
	width := func(s string, st chart.Style) int { return chart.Draw.MeasureText(m, svgText(s), st).Width() }
	var used []int
	top := 0.0
	for _, bar := range bars {
		total := 0.0
		for _, s := range bar {
			if !slices.Contains(used, s.hue) {
				used = append(used, s.hue)
			}
			total += s.micros
		}
		top = max(top, total)
	}
	slices.Sort(used)
	const pad, square, gap, space, legendRow = 16, 10, 4, 16, 16
	legendStyle := styleOf(9, textColor)
	type placed struct{ x, row, hue int }
	var entries []placed
	x, row := pad, 0
	for _, h := range used {
		w := square + gap + width(waterfallHues[h].name, legendStyle)
		if x > pad && x+w > waterfallWidth-pad {
			x, row = pad, row+1
		}
		entries = append(entries, placed{x, row, h})
		x += w + space
	}
	nameStyle := styleOf(10, textColor)
	names := 0
	for _, c := range cats {
		names = max(names, width(c, nameStyle))
	}
	legendTop := 34
	plotTop := legendTop + (row+1)*legendRow + 10
	plotLeft, plotRight := pad+names+10, waterfallWidth-pad-48
	plotBottom := plotTop + len(cats)*barPitch
	height := plotBottom + 44

	r, err := chart.SVG(waterfallWidth, height)
	if err != nil {
		return "", err
	}
	titleStyle := styleOf(13, textColor)
	chart.Draw.Text(r, svgText(title), (waterfallWidth-width(title, titleStyle))/2, 20, titleStyle)
	for _, e := range entries {
		y := legendTop + e.row*legendRow
		box := chart.Box{Top: y, Left: e.x, Right: e.x + square, Bottom: y + square}
		hueBox(r, box, waterfallHues[e.hue])
		chart.Draw.Text(r, svgText(waterfallHues[e.hue].name), e.x+square+gap, y+square-1, legendStyle)
	}
	// The axis: round µs from 0, a grid line at each.
	ticks := yTicks(top)
	end := ticks[len(ticks)-1].Value
	at := func(v float64) int { return plotLeft + int(math.Round(v/end*float64(plotRight-plotLeft))) }
	grid := chart.Style{StrokeColor: gridColor, StrokeWidth: 1}
	tickStyle := styleOf(9, mutedColor)
	for _, t := range ticks {
		x := at(t.Value)
		line(r, grid, x, plotTop-4, x, plotBottom)
		chart.Draw.Text(r, t.Label, x-width(t.Label, tickStyle)/2, plotBottom+13, tickStyle)
	}
	axisStyle := styleOf(10, mutedColor)
	chart.Draw.Text(r, svgText(axis), (plotLeft+plotRight-width(axis, axisStyle))/2, plotBottom+32, axisStyle)
	valueStyle := styleOf(8, textColor)
	for i, bar := range bars {
		y := plotTop + i*barPitch + (barPitch-barHeight)/2
		chart.Draw.Text(r, svgText(cats[i]), plotLeft-8-width(cats[i], nameStyle), y+barHeight/2+4, nameStyle)
		sum := 0.0
		for _, s := range bar {
			x0, x1 := at(sum), at(sum+s.micros)
			sum += s.micros
			if x1-x0 < 1 {
				continue
			}
			hueBox(r, chart.Box{Top: y, Left: x0, Right: x1, Bottom: y + barHeight}, waterfallHues[s.hue])
			if l := svgText(short(s.micros)); chart.Draw.MeasureText(r, l, valueStyle).Width()+4 <= x1-x0 {
				st := valueStyle
				if luminance(waterfallHues[s.hue].color) < 0.45 {
					st.FontColor = drawing.ColorWhite
				}
				chart.Draw.Text(r, l, (x0+x1-chart.Draw.MeasureText(r, l, st).Width())/2, y+barHeight/2+3, st)
			}
		}
		total := svgText(short(sum) + " µs")
		chart.Draw.Text(r, total, at(sum)+5, y+barHeight/2+4, styleOf(9, textColor))
	}
	var b bytes.Buffer
	if err := r.Save(&b); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil
}

// hueBox fills box in the hue's colour, hatched for a crossing.
func hueBox(r chart.Renderer, box chart.Box, h waterfallHue) {
	chart.Draw.Box(r, box, chart.Style{FillColor: h.color, StrokeColor: drawing.ColorWhite, StrokeWidth: 0.5})
	if h.crossing {
		hatch(r, box)
	}
}

// hatch draws white diagonal lines across box, clipped to it.
func hatch(r chart.Renderer, box chart.Box) {
	style := chart.Style{StrokeColor: drawing.Color{R: 255, G: 255, B: 255, A: 150}, StrokeWidth: 1}
	h := box.Height()
	for k := box.Left - h; k < box.Right; k += 5 {
		// The line from (k, bottom) to (k+h, top), for t in [lo, hi].
		lo, hi := max(0, box.Left-k), min(h, box.Right-k)
		if lo < hi {
			line(r, style, k+lo, box.Bottom-lo, k+hi, box.Bottom-hi)
		}
	}
}

// luminance is a colour's relative brightness, 0 to 1.
func luminance(c drawing.Color) float64 {
	return (0.299*float64(c.R) + 0.587*float64(c.G) + 0.114*float64(c.B)) / 255
}

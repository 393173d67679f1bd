package lab

// This file writes a Report out: report.md (tables), report.json (the Report
// itself) and report.html (one self-contained page: the tables and, per
// scenario, bar charts drawn as SVG by go-chart, inlined, no script and no
// external resource).

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang/freetype/truetype"
	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
	"github.com/wcharczuk/go-chart/v2/roboto"

	"github.com/wslab/wslab/client"
)

// WriteReports writes report.md, report.json and report.html into dir,
// creating it.
func WriteReports(dir string, r *Report) error {
	page, err := r.HTML()
	if err != nil {
		return fmt.Errorf("report.html: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report.json: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"report.md", []byte(r.Markdown())},
		{"report.json", append(js, '\n')},
		{"report.html", page},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// The tables, shared by report.md and report.html.

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

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
// report.md

// Markdown is report.md: a title, then per scenario its load and a table
// with one row per strategy.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s\n\n%s\n", r.title(), r.about(), columnsNote)
	for _, sc := range r.Scenarios {
		fmt.Fprintf(&b, "\n## %s\n\n", sc.Name)
		if sc.Description != "" {
			fmt.Fprintf(&b, "%s\n\n", sc.Description)
		}
		if sc.Load != "" {
			fmt.Fprintf(&b, "Load: %s\n\n", sc.Load)
		}
		mdTable(&b, tableHeader, r.rows(sc.Name))
		if kt := r.kinds(sc.Name); kt != nil {
			b.WriteString("\nLatency per task kind, p50 / p99 ms:\n\n")
			mdTable(&b, append([]string{"strategy"}, kt.Kinds...), kt.Rows)
		}
	}
	if fs := r.failures(); len(fs) > 0 {
		b.WriteString("\n## Failures\n\n")
		for _, f := range fs {
			fmt.Fprintf(&b, "- %s under %s: %s\n", f.Strategy, f.Scenario, mdCode(f.Reason))
		}
	}
	return b.String()
}

func mdTable(b *strings.Builder, header []string, rows []tableRow) {
	mdRow(b, header)
	align := make([]string, len(header))
	for i := range align {
		align[i] = "---:"
	}
	align[0] = "---"
	mdRow(b, align)
	for _, row := range rows {
		cells := append([]string{row.Strategy}, row.Cells...)
		switch {
		case row.Failed != "":
			cells = append(cells, "failed: "+mdCode(row.Failed))
		case row.Note != "":
			cells = append(cells, row.Note)
		}
		for len(cells) < len(header) {
			cells = append(cells, "")
		}
		mdRow(b, cells)
	}
}

// mdCode quotes s, on one line, as a code span: error text may hold
// markup ("<nil>", "*", "_").
func mdCode(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	fence, run := 1, 0
	for _, c := range s {
		if c != '`' {
			run = 0
			continue
		}
		run++
		fence = max(fence, run+1)
	}
	tick := strings.Repeat("`", fence)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return tick + s + tick
}

func mdRow(b *strings.Builder, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		c = strings.ReplaceAll(strings.Join(strings.Fields(c), " "), "|", `\|`)
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n")
}

// ---------------------------------------------------------------------------
// report.html

//go:embed assets/report.html.tmpl
var pageSource string

var pageTemplate = template.Must(template.New("report.html").Parse(pageSource))

// page is what assets/report.html.tmpl draws.
type page struct {
	Title, About, Note string
	Strategies         []swatch
	FontFace           template.CSS
	Failures           []failure
	Header             []string
	Span               int // columns after the strategy
	Scenarios          []scenarioPage
}

// swatch is a strategy's name and the colour of its bars.
type swatch struct {
	Name  string
	Color template.CSS
}

type scenarioPage struct {
	Scenario
	ID     string
	Charts []figure
	Rows   []tableRow
	Kinds  *kindTable
}

// figure is one chart: data-chart="ID" on its <figure class="chart">.
type figure struct {
	ID      string
	Caption string
	SVG     template.HTML
}

// HTML is report.html.
func (r *Report) HTML() ([]byte, error) {
	p := page{
		Title:    r.title(),
		About:    r.about(),
		Note:     columnsNote,
		FontFace: fontFace(),
		Failures: r.failures(),
		Header:   tableHeader,
		Span:     len(tableHeader) - 1,
	}
	for i, n := range r.strategyNames() {
		p.Strategies = append(p.Strategies, swatch{n, template.CSS(strategyColor(i).String())})
	}
	for _, sc := range r.Scenarios {
		charts, err := r.charts(sc.Name)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
		p.Scenarios = append(p.Scenarios, scenarioPage{
			Scenario: sc, ID: slug(sc.Name), Charts: charts,
			Rows: r.rows(sc.Name), Kinds: r.kinds(sc.Name),
		})
	}
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// slug makes s fit for an id or a data-chart value: "cpu heavy" → "cpu-heavy".
func slug(s string) string {
	s = strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			return c
		case c >= 'A' && c <= 'Z':
			return c + 'a' - 'A'
		}
		return '-'
	}, s)
	if s == "" {
		return "scenario"
	}
	return s
}

// fontFamily is the name go-chart gives, in the SVG, to the font it measures
// text with (Roboto Medium).
var fontFamily = sync.OnceValue(func() string {
	if f, err := chart.GetDefaultFont(); err == nil {
		if name := f.Name(truetype.NameIDFontFamily); name != "" {
			return name
		}
	}
	return "Roboto"
})

// fontFace embeds that font, so that the charts' labels fit where go-chart
// placed them, offline and on every machine.
var fontFace = sync.OnceValue(func() template.CSS {
	return template.CSS(fmt.Sprintf("@font-face{font-family:%q;src:url(data:font/ttf;base64,%s) format(\"truetype\")}",
		fontFamily(), base64.StdEncoding.EncodeToString(roboto.Roboto)))
})

// ---------------------------------------------------------------------------
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

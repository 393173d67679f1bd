package lab

// report.html: one self-contained page, the tables and, per scenario, bar
// charts drawn as SVG by go-chart, inlined, no script and no external
// resource.

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"
	"sync"

	"github.com/golang/freetype/truetype"
	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/roboto"
)

// report.html

//go:embed assets/report.html.tmpl
var pageSource string

// pageStyle is the style sheet report.html and compare.html share.
//
//go:embed assets/report.css
var pageStyle string

var pageTemplate = template.Must(template.New("report.html").Parse(pageSource))

// page is what assets/report.html.tmpl draws.
type page struct {
	Title, About, Note string
	Verdict            []verdictLine
	Strategies         []swatch
	FontFace           template.CSS
	Style              template.CSS
	Failures           []failure
	Header             []string
	Span               int // columns after the strategy
	Scenarios          []scenarioPage
	Contenders         []Contender
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
	Rows   []tableRow // the main table; none for capacity
	// Extra is the scenario's own table before the main one: the
	// isolation costs of rtt, the rates of capacity.
	Extra *table
	Kinds *table
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
		Title:      r.title(),
		About:      r.about(),
		Note:       r.columnsNote(),
		Verdict:    r.verdict(),
		FontFace:   fontFace(),
		Style:      template.CSS(pageStyle),
		Failures:   r.failures(),
		Header:     tableHeader,
		Span:       len(tableHeader) - 1,
		Contenders: r.Contenders,
	}
	for i, n := range r.strategyNames() {
		p.Strategies = append(p.Strategies, swatch{n, template.CSS(strategyColor(i).String())})
	}
	for _, sc := range r.Scenarios {
		sp := scenarioPage{Scenario: sc, ID: slug(sc.Name)}
		var extra func() (*figure, error)
		switch sc.Name {
		case scenarioCapacity:
			sp.Extra, extra = r.capacityTable(), r.capacityChart
		case scenarioRTT:
			sp.Extra, extra = r.isolationTable(), r.isolationChart
		}
		if extra != nil {
			fig, err := extra()
			if err != nil {
				return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
			}
			if fig != nil {
				sp.Charts = append(sp.Charts, *fig)
			}
		}
		charts, err := r.charts(sc.Name)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
		sp.Charts = append(sp.Charts, charts...)
		if sc.Name != scenarioCapacity {
			sp.Rows, sp.Kinds = r.rows(sc.Name), r.kinds(sc.Name)
		}
		p.Scenarios = append(p.Scenarios, sp)
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

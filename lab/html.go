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

// pageParts are the templates the pages call: the head, the swatches and
// the charts, which report.html and compare.html share, and report.html's
// tables.
//
//go:embed assets/common.html.tmpl
var pageParts string

// pageStyle is the style sheet report.html and compare.html share.
//
//go:embed assets/report.css
var pageStyle string

var pageTemplate = parsePage("report.html", pageSource)

// parsePage parses a page's template along with pageParts.
func parsePage(name, source string) *template.Template {
	return template.Must(template.Must(template.New(name).Parse(pageParts)).Parse(source))
}

// page is what assets/report.html.tmpl draws.
type page struct {
	Title, About, Note string
	Verdict            []verdictLine
	Strategies         []swatch
	FontFace           template.CSS
	Style              template.CSS
	Failures           []failure
	Scenarios          []scenarioPage
	Contenders         []Contender
}

// swatch is a strategy's name and the colour of its bars.
type swatch struct {
	Name  string
	Color template.CSS
}

// swatches are the names, each in its colour: the one the charts give it
// by its place in names.
func swatches(names []string) []swatch {
	out := make([]swatch, len(names))
	for i, n := range names {
		out[i] = swatch{n, template.CSS(strategyColor(i).String())}
	}
	return out
}

type scenarioPage struct {
	Scenario
	ID     string
	Charts []figure
	// Extra, Timeline, Main, Kinds and Host are the scenario's tables, in
	// page order; nil where it has none. TimelineNote says what the
	// timeline table's columns cover, HostTitle and HostNote introduce and
	// explain the host's own counts.
	Extra, Timeline, Main, Kinds, Host *table
	TimelineNote, HostTitle, HostNote  string
	// Attacks and Notes are the ladder's: what each attack got, and what
	// its columns measured.
	Attacks *table
	Notes   []string
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
		Strategies: swatches(r.strategyNames()),
		Contenders: r.Contenders,
	}
	for _, sc := range r.Scenarios {
		if sc.Name == scenarioLadder {
			charts, err := r.ladderCharts()
			if err != nil {
				return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
			}
			p.Scenarios = append(p.Scenarios, scenarioPage{
				Scenario: sc, ID: slug(sc.Name), Charts: charts,
				Extra: r.ladderTable(), Attacks: r.attacksTable(), Notes: r.ladderNotes(),
			})
			continue
		}
		charts, err := r.charts(sc.Name)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
		sp := scenarioPage{
			Scenario: sc,
			ID:       slug(sc.Name),
			Charts:   charts,
			Extra:    r.extraTable(sc.Name),
			Main:     r.mainTable(sc.Name),
			Kinds:    r.kinds(sc.Name),
			Host:     r.hostTable(sc.Name),
		}
		if sp.Host != nil {
			sp.HostTitle, sp.HostNote = hostTableTitle, r.hostNote(sc.Name)
		}
		if sc.Name == scenarioRTT {
			var cols []spanColumn
			if sp.Timeline, cols = r.timelineTable(); sp.Timeline != nil {
				sp.TimelineNote = timelineNote(cols)
			}
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

package lab

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/browsercheck"
)

// TestReportInBrowser opens report.html in headless Chromium: the page loads
// offline with no error, requests nothing but itself, every chart takes
// room, draws and says no NaN, and the charts' text is in the embedded font
// go-chart measured. It saves a full-page screenshot.
func TestReportInBrowser(t *testing.T) {
	dir, r := writeSample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := filepath.Join(dir, "report.html")
	p := browsercheck.Check(ctx, t, path, browsercheck.FullScreenshot)
	if p.Title != r.title() {
		t.Errorf("title %q, want %q", p.Title, r.title())
	}
	if want := len(figureRE.FindAllString(readFile(t, path), -1)); len(p.Charts) != want {
		t.Errorf("%d charts in the browser, %d in the file", len(p.Charts), want)
	}
	checkWaterfall(t, r, p.Charts)
	checkLadder(t, r, p)
	if want := fontFamily() + ": loaded"; len(p.Fonts) != 1 || p.Fonts[0] != want {
		t.Errorf("fonts %q, want [%q]", p.Fonts, want)
	}
	shot := filepath.Join(t.TempDir(), "report.png")
	if err := os.WriteFile(shot, p.Screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if keep := os.Getenv("WSLAB_SCREENSHOT"); keep != "" {
		if err := os.WriteFile(keep, p.Screenshot, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// checkLadder says whether the browser drew the isolation ladder: its
// table laid out with a row per rung that ran, in the ladder's order, the
// header's columns in every row, the figures the report holds; the
// attacks table; and its three charts, each a bar per rung.
func checkLadder(t *testing.T, r *Report, p *browsercheck.Page) {
	t.Helper()
	lt := p.Table("ladder")
	if lt == nil {
		t.Fatalf("no ladder table among %d tables", len(p.Tables))
	}
	if lt.Width <= 0 || lt.Height <= 0 {
		t.Errorf("the ladder table takes %v×%v px", lt.Width, lt.Height)
	}
	if !slices.Equal(lt.Header, ladderHeader) {
		t.Errorf("ladder header %q, want %q", lt.Header, ladderHeader)
	}
	if len(lt.Rows) != len(r.Ladder.Rows) {
		t.Fatalf("%d ladder rows in the browser, %d rungs ran", len(lt.Rows), len(r.Ladder.Rows))
	}
	for i, row := range r.Ladder.Rows {
		got := lt.Rows[i]
		if len(got) != len(ladderHeader) || got[0] != rungName(row.Rung) || got[1] != estimate(row.NoopUS) {
			t.Errorf("ladder row %d: %q, want %s with noop %s in %d cells", i, got, row.Rung, estimate(row.NoopUS), len(ladderHeader))
		}
	}
	if at := p.Table("attacks"); at == nil || len(at.Rows) != len(r.Ladder.Attacks) || at.Height <= 0 {
		t.Errorf("attacks table %+v, want a row per recorded rung (%d)", at, len(r.Ladder.Attacks))
	}
	for _, id := range []string{"ladder-noop", "ladder-memory", "ladder-startup"} {
		i := slices.IndexFunc(p.Charts, func(c browsercheck.Chart) bool { return c.ID == id })
		if i < 0 {
			t.Errorf("no chart %s", id)
			continue
		}
		for _, row := range r.Ladder.Rows {
			if id == "ladder-startup" && row.StartupMS.N() == 0 {
				continue
			}
			if !strings.Contains(p.Charts[i].Text, rungName(row.Rung)) {
				t.Errorf("chart %s lacks the rung %s: %q", id, row.Rung, p.Charts[i].Text)
			}
		}
	}
}

// checkWaterfall says whether the browser drew the waterfall, "where a
// noop's round trip goes": wide across the page, its title, a bar with a
// name and a total for every strategy with a timeline, at least a shape
// for every segment wider than a µs and every legend swatch, and the
// legend's names.
func checkWaterfall(t *testing.T, r *Report, charts []browsercheck.Chart) {
	t.Helper()
	var wf, other *browsercheck.Chart
	for i := range charts {
		switch c := &charts[i]; {
		case c.ID == "waterfall":
			wf = c
		case other == nil && c.ID != "capacity":
			other = c
		}
	}
	if wf == nil {
		t.Fatalf("no waterfall (where a noop's round trip goes) among the charts %+v", charts)
	}
	if other != nil && wf.Width < 1.5*other.Width {
		t.Errorf("the waterfall is %.0f px wide, a chart beside it %.0f: it should span the page", wf.Width, other.Width)
	}
	if wf.Height <= 0 || wf.Width < 3*wf.Height {
		t.Errorf("the waterfall is %.0f×%.0f px: one short bar per strategy should be far wider than high", wf.Width, wf.Height)
	}
	want := []string{"Where a noop’s round trip goes"}
	shapes := 0
	hues := map[int]bool{}
	names, results := r.scenarioResults(scenarioRTT)
	for i, res := range results {
		if res == nil || len(res.Spans) == 0 {
			continue
		}
		want = append(want, names[i], short(spansTotal(res.Spans))+" µs")
		for _, s := range segments(res.Spans) {
			hues[s.hue] = true
			if s.micros >= 1 {
				shapes++
			}
		}
	}
	for h := range hues {
		want = append(want, waterfallHues[h].name)
	}
	shapes += len(hues)
	if wf.Shapes < shapes {
		t.Errorf("the waterfall has %d shapes, want at least %d (segments and swatches)", wf.Shapes, shapes)
	}
	for _, s := range want {
		if !strings.Contains(wf.Text, s) {
			t.Errorf("the waterfall's text lacks %q: %q", s, wf.Text)
		}
	}
}

package lab

import (
	"context"
	"os"
	"path/filepath"
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

package lab

import (
	"context"
	"os"
	"path/filepath"
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
	waterfall := false
	for _, c := range p.Charts {
		waterfall = waterfall || c.ID == "waterfall"
	}
	if !waterfall {
		t.Errorf("no waterfall (where a noop's round trip goes) among the charts %+v", p.Charts)
	}
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

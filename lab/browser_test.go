package lab

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const chromium = "/usr/bin/chromium"

// TestReportInBrowser opens report.html in headless Chromium: the page loads
// offline with no error, requests nothing but itself, and every chart has
// an SVG that takes room on the page. It saves a full-page screenshot.
func TestReportInBrowser(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s not found (%v); install it (apt-get install -y chromium) to run the browser test", chromium, err)
	}
	dir, r := writeSample(t)
	page := (&url.URL{Scheme: "file", Path: filepath.Join(dir, "report.html")}).String()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()

	var (
		mu       sync.Mutex
		problems []string
	)
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			report("exception: %s (line %d)", text, d.LineNumber)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				report("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				report("log error (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			if u := ev.Request.URL; !strings.HasPrefix(u, "file:") && !strings.HasPrefix(u, "data:") {
				report("request to %s", u)
			}
		}
	})
	if err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitReady("body")); err != nil {
		t.Fatalf("load %s: %v", page, err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if title != r.title() {
		t.Errorf("title %q, want %q", title, r.title())
	}
	// Every chart takes room, has drawn shapes, and no NaN or empty figure
	// in its text.
	type chartBox struct {
		ID     string  `json:"id"`
		Width  float64 `json:"w"`
		Height float64 `json:"h"`
		Shapes int     `json:"shapes"`
		Text   string  `json:"text"`
	}
	boxes, err := chromedp.Run(ctx, chromedp.Evaluate[[]chartBox](`Array.from(document.querySelectorAll('figure.chart')).map(f => {
		const s = f.querySelector('svg'); const r = s ? s.getBoundingClientRect() : {width: 0, height: 0};
		return {id: f.dataset.chart, w: r.width, h: r.height, shapes: s ? s.querySelectorAll('path, rect, circle').length : 0, text: s ? s.textContent : ''};
	})`))
	if err != nil {
		t.Fatal(err)
	}
	want := len(figureRE.FindAllString(readFile(t, filepath.Join(dir, "report.html")), -1))
	if want == 0 || len(boxes) != want {
		t.Errorf("%d charts in the browser, %d in the file", len(boxes), want)
	}
	for _, b := range boxes {
		if b.Width <= 0 || b.Height <= 0 || b.Shapes < 3 || strings.Contains(b.Text, "NaN") || strings.TrimSpace(b.Text) == "" {
			t.Errorf("chart %s: %v×%v px, %d shapes, text %q", b.ID, b.Width, b.Height, b.Shapes, firstLine(b.Text, 80))
		}
	}
	// The charts' text is drawn in the embedded font, which go-chart measured.
	fonts, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`document.fonts.ready.then(fs => Array.from(fs).map(f => f.family.replace(/"/g, '') + ': ' + f.status))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if want := fontFamily() + ": loaded"; len(fonts) != 1 || fonts[0] != want {
		t.Errorf("fonts %q, want [%q]", fonts, want)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "report.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if keep := os.Getenv("WSLAB_SCREENSHOT"); keep != "" {
		if err := os.WriteFile(keep, png, 0o644); err != nil {
			t.Error(err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
}

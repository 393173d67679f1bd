// Package browsercheck opens a page the lab wrote (report.html,
// compare.html) in headless Chromium, offline, and says what the browser
// saw: the errors it logged, what the page requested, and how each chart
// was drawn. The lab's tests and the end-to-end tests share it.
package browsercheck

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium is where Debian's chromium package puts the browser.
const Chromium = "/usr/bin/chromium"

// ErrNoBrowser says Chromium is not installed.
var ErrNoBrowser = errors.New("browsercheck: " + Chromium + " not found; install it (apt-get install -y chromium)")

// Chart is one <figure class="chart"> as the browser laid it out.
type Chart struct {
	ID     string  `json:"id"`
	Width  float64 `json:"w"`
	Height float64 `json:"h"`
	Shapes int     `json:"shapes"` // paths, rects and circles in its SVG
	Text   string  `json:"text"`   // the SVG's text
}

// Table is one <table data-table="ID"> as the browser laid it out.
type Table struct {
	ID     string     `json:"id"`
	Width  float64    `json:"w"`
	Height float64    `json:"h"`
	Header []string   `json:"header"` // the text of each <th>
	Rows   [][]string `json:"rows"`   // the text of each body row's cells
}

// Page is what the browser saw of one page.
type Page struct {
	Title  string
	Charts []Chart
	// Tables are the page's tables that have a data-table name.
	Tables []Table
	Fonts  []string // "family: status" of every font face
	// Problems are exceptions, console and log errors, and requests to
	// anything but the file itself and data: URLs.
	Problems   []string
	Screenshot []byte // PNG of the whole page, when asked for
}

// Option asks Open for more than it does by default.
type Option int

// FullScreenshot fills Page.Screenshot. It is opt-in: encoding a tall page
// as PNG takes a while, and only a test that keeps the picture needs it.
const FullScreenshot Option = 1

// Tab is a tab of a fresh headless Chromium, offline but for loopback,
// that notes what goes wrong in it: exceptions, console and log errors,
// and requests it was not meant to make.
type Tab struct {
	// Ctx is the tab's chromedp context, for chromedp.Run.
	Ctx      context.Context
	close    func()
	mu       sync.Mutex
	problems []string
}

// NewTab starts Chromium with a profile of its own; a request to a URL
// that allowed refuses is a problem. Close stops it.
func NewTab(ctx context.Context, allowed func(url string) bool) (*Tab, error) {
	if _, err := os.Stat(Chromium); err != nil {
		return nil, ErrNoBrowser
	}
	profile, err := os.MkdirTemp("", "browsercheck-")
	if err != nil {
		return nil, err
	}
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(Chromium),
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
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t := &Tab{Ctx: ctx, close: func() {
		cancelTab()
		cancelAlloc() // waits for Chromium to exit
		os.RemoveAll(profile)
	}}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			t.problem("exception: %s (line %d)", text, d.LineNumber)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				t.problem("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				t.problem("log error (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			if u := ev.Request.URL; !allowed(u) {
				t.problem("request to %s", u)
			}
		}
	}); err != nil {
		t.Close()
		return nil, fmt.Errorf("start %s: %w", Chromium, err)
	}
	return t, nil
}

func (t *Tab) problem(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.problems = append(t.problems, fmt.Sprintf(format, args...))
}

// Problems are what went wrong in the tab so far.
func (t *Tab) Problems() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.problems)
}

// Close stops the browser and removes its profile.
func (t *Tab) Close() { t.close() }

// Open loads the page at path in a fresh headless Chromium and waits for
// its fonts.
func Open(ctx context.Context, path string, opts ...Option) (*Page, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	tab, err := NewTab(ctx, func(u string) bool { return strings.HasPrefix(u, "file:") || strings.HasPrefix(u, "data:") })
	if err != nil {
		return nil, err
	}
	defer tab.Close()
	ctx = tab.Ctx
	p := &Page{}
	defer func() { p.Problems = tab.Problems() }()
	page := (&url.URL{Scheme: "file", Path: abs}).String()
	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitReady("body")); err != nil {
		return nil, fmt.Errorf("load %s: %w", page, err)
	}
	if p.Title, err = chromedp.Run(ctx, chromedp.Title()); err != nil {
		return nil, err
	}
	if p.Fonts, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`document.fonts.ready.then(fs => Array.from(fs).map(f => f.family.replace(/"/g, '') + ': ' + f.status))`,
		chromedp.EvalAwaitPromise)); err != nil {
		return nil, err
	}
	if p.Charts, err = chromedp.Run(ctx, chromedp.Evaluate[[]Chart](`Array.from(document.querySelectorAll('figure.chart')).map(f => {
		const s = f.querySelector('svg'); const r = s ? s.getBoundingClientRect() : {width: 0, height: 0};
		return {id: f.dataset.chart, w: r.width, h: r.height, shapes: s ? s.querySelectorAll('path, rect, circle').length : 0, text: s ? s.textContent : ''};
	})`)); err != nil {
		return nil, err
	}
	if p.Tables, err = chromedp.Run(ctx, chromedp.Evaluate[[]Table](`Array.from(document.querySelectorAll('table[data-table]')).map(t => {
		const r = t.getBoundingClientRect(); const text = c => c.innerText.trim();
		return {id: t.dataset.table, w: r.width, h: r.height,
			header: Array.from(t.querySelectorAll('thead th')).map(text),
			rows: Array.from(t.querySelectorAll('tbody tr')).map(tr => Array.from(tr.cells).map(text))};
	})`)); err != nil {
		return nil, err
	}
	if slices.Contains(opts, FullScreenshot) {
		if p.Screenshot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Faults lists what is wrong with the page: its problems, and every chart
// that takes no room, draws fewer than three shapes, or writes no text or
// a NaN.
func (p *Page) Faults() []string {
	faults := append([]string(nil), p.Problems...)
	if len(p.Charts) == 0 {
		faults = append(faults, "no chart")
	}
	for _, c := range p.Charts {
		if c.Width <= 0 || c.Height <= 0 || c.Shapes < 3 || strings.Contains(c.Text, "NaN") || strings.TrimSpace(c.Text) == "" {
			text := c.Text
			if len(text) > 80 {
				text = text[:80] + "…"
			}
			faults = append(faults, fmt.Sprintf("chart %s: %v×%v px, %d shapes, text %q", c.ID, c.Width, c.Height, c.Shapes, text))
		}
	}
	return faults
}

// TB is the part of testing.TB that Check uses.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
	Errorf(format string, args ...any)
}

// Check is Open in a test: it skips the test where there is no browser,
// fails it on any other error, reports each of the page's Faults, and
// returns the page for the test's own checks.
func Check(ctx context.Context, t TB, path string, opts ...Option) *Page {
	t.Helper()
	p, err := Open(ctx, path, opts...)
	if errors.Is(err, ErrNoBrowser) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Faults() {
		t.Errorf("%s: %s", filepath.Base(path), f)
	}
	return p
}

// Table is the page's table named id, nil when there is none.
func (p *Page) Table(id string) *Table {
	for i := range p.Tables {
		if p.Tables[i].ID == id {
			return &p.Tables[i]
		}
	}
	return nil
}

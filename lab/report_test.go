package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/client"
)

// sampleReport is a lab run made up by hand: three strategies, two
// scenarios, and pool failing under the second.
func sampleReport() *Report {
	lat := func(p50, p90, p99, max float64) client.Percentiles {
		return client.Percentiles{Count: 1000, Min: p50 / 4, Mean: p50 * 1.2, P50: p50, P90: p90, P99: p99, P999: max * 0.9, Max: max}
	}
	summary := func(tput float64, all client.Percentiles, kinds map[string]client.Percentiles) *client.Summary {
		l := map[string]client.Percentiles{"all": all}
		for k, v := range kinds {
			l[k] = v
		}
		return &client.Summary{
			URL: "ws://127.0.0.1:8765/ws", Protocol: "json", Mode: "duration", Clients: 200, Pipeline: 4,
			WallSeconds: 4.01, Sent: int64(tput * 4), Replies: int64(tput * 4), OK: int64(tput * 4),
			Errors: map[string]int64{}, Throughput: tput, Latency: l,
		}
	}
	semMixed := summary(8120.5, lat(3.2, 9.8, 41, 120), map[string]client.Percentiles{
		"fib": lat(1.1, 3, 8, 20), "cpu": lat(9.5, 20, 60, 120), "io": lat(2.2, 6, 18, 44)})
	semMixed.Errors = map[string]int64{"overloaded": 3}
	semMixed.Missing = 2
	return &Report{
		Started:    time.Date(2026, 3, 1, 14, 5, 6, 0, time.UTC),
		Seconds:    83.4,
		Machine:    Machine{CPUs: 8, GoVersion: "go1.26.0", OS: "linux/amd64", Kernel: "6.1.0"},
		ConfigPath: "config.ini",
		Strategies: []string{"inproc", "semaphore", "pool"},
		Scenarios: []Scenario{
			{Name: "mixed", Description: "Every connection sends fib, cpu and io, as the Python lab did.",
				Load: "200 clients × fib, cpu, io"},
			{Name: "cpu", Description: "CPU-bound tasks only: sums of integers.", Load: "4 clients × cpu (n=2000000), 4 s"},
		},
		Results: []Result{
			{Strategy: "inproc", Scenario: "mixed", Summary: summary(15230, lat(1.21, 4.5, 19.7, 80),
				map[string]client.Percentiles{"fib": lat(0.4, 1, 3, 9), "cpu": lat(4.1, 9, 25, 80), "io": lat(0.9, 2, 7, 30)}),
				CPUSeconds: 21.7, PeakRSSMB: 48.2, Processes: 1, RelThroughput: 1, RelP50: 1},
			{Strategy: "semaphore", Scenario: "mixed", Summary: semMixed,
				CPUSeconds: 19.3, PeakRSSMB: 61.9, Processes: 2, RelThroughput: 0.533, RelP50: 2.64},
			{Strategy: "pool", Scenario: "mixed", Summary: summary(12944, lat(1.9, 6.1, 25, 95),
				map[string]client.Percentiles{"fib": lat(0.6, 2, 4, 12), "cpu": lat(5.2, 11, 30, 95), "io": lat(1.3, 3, 9, 33)}),
				CPUSeconds: 24.8, PeakRSSMB: 73.4, Processes: 2, RelThroughput: 0.85, RelP50: 1.57},
			{Strategy: "inproc", Scenario: "cpu", Summary: summary(612.4, lat(6.5, 7.9, 12.2, 30), nil),
				CPUSeconds: 15.9, PeakRSSMB: 22.5, Processes: 1, RelThroughput: 1, RelP50: 1},
			{Strategy: "semaphore", Scenario: "cpu", Summary: summary(598.1, lat(6.7, 8.3, 13.1, 33), nil),
				CPUSeconds: 16.2, PeakRSSMB: 30.1, Processes: 2, RelThroughput: 0.977, RelP50: 1.03},
			{Strategy: "pool", Scenario: "cpu",
				Failed: "plugin did not start: exec: bin/plugins/pool: <no such file> | see logs\nsecond line"},
		},
	}
}

func writeSample(t *testing.T) (string, *Report) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out") // WriteReports creates it
	r := sampleReport()
	if err := WriteReports(dir, r); err != nil {
		t.Fatal(err)
	}
	return dir, r
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return string(b)
}

func TestWriteReportsJSON(t *testing.T) {
	dir, want := writeSample(t)
	var got Report
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "report.json"))), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Started.Equal(want.Started) || got.Seconds != want.Seconds || got.Machine != want.Machine ||
		got.ConfigPath != want.ConfigPath || strings.Join(got.Strategies, ",") != strings.Join(want.Strategies, ",") {
		t.Errorf("header: got %+v", got)
	}
	if len(got.Scenarios) != len(want.Scenarios) {
		t.Fatalf("got %d scenarios, want %d", len(got.Scenarios), len(want.Scenarios))
	}
	for i, sc := range got.Scenarios {
		if w := want.Scenarios[i]; sc.Name != w.Name || sc.Description != w.Description || sc.Load != w.Load {
			t.Errorf("scenario %d: got %+v, want %+v", i, sc, w)
		}
	}
	if len(got.Results) != len(want.Results) {
		t.Fatalf("got %d results, want %d", len(got.Results), len(want.Results))
	}
	for i, g := range got.Results {
		w := want.Results[i]
		if g.Strategy != w.Strategy || g.Scenario != w.Scenario || g.Failed != w.Failed ||
			g.CPUSeconds != w.CPUSeconds || g.PeakRSSMB != w.PeakRSSMB || g.Processes != w.Processes ||
			g.RelThroughput != w.RelThroughput || g.RelP50 != w.RelP50 || (g.Summary == nil) != (w.Summary == nil) {
			t.Errorf("result %d: got %+v, want %+v", i, g, w)
			continue
		}
		if w.Summary == nil {
			continue
		}
		if g.Summary.Throughput != w.Summary.Throughput || g.Summary.Missing != w.Summary.Missing ||
			g.Summary.Latency["all"] != w.Summary.Latency["all"] || len(g.Summary.Latency) != len(w.Summary.Latency) ||
			len(g.Summary.Errors) != len(w.Summary.Errors) {
			t.Errorf("result %d summary: got %+v, want %+v", i, g.Summary, w.Summary)
		}
	}
}

func TestWriteReportsMarkdown(t *testing.T) {
	dir, r := writeSample(t)
	md := readFile(t, filepath.Join(dir, "report.md"))
	if md != r.Markdown() {
		t.Error("report.md differs from Markdown()")
	}
	for _, s := range append(append([]string{"failed", "2026-03-01", "8 CPUs", "1m23s", "| strategy |"}, r.Strategies...),
		"## mixed", "## cpu", "200 clients × fib, cpu, io") {
		if !strings.Contains(md, s) {
			t.Errorf("report.md lacks %q", s)
		}
	}
	lines := strings.Split(md, "\n")
	row := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Errorf("report.md has no line starting %q", prefix)
		return ""
	}
	// The first semaphore row is under mixed: 8120.5 tasks/s, 3 error replies + 2 missing.
	if got, want := row("| semaphore |"), "| semaphore | 8120 | 0.533 | 3.2 | 9.8 | 41 | 120 | 5 | 19.3 | 61.9 | 2 |"; got != want {
		t.Errorf("semaphore row:\n got %s\nwant %s", got, want)
	}
	// The failed row keeps the table shape, its reason's first line with the pipe escaped.
	failed := row("| pool | failed:")
	if !strings.Contains(failed, "failed: `plugin did not start: exec: bin/plugins/pool: <no such file> \\| see logs…`") || strings.Count(failed, " |") != len(tableHeader) {
		t.Errorf("failed row: %s", failed)
	}
	if !strings.Contains(md, "Latency per task kind") {
		t.Error("report.md lacks the per-kind table of mixed")
	}
}

var (
	externalRef = regexp.MustCompile(`(?i)\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//`)
	cssURL      = regexp.MustCompile(`(?i)(?:url\(\s*["']?\s*(?:https?:)?//|@import)`)
	scriptTag   = regexp.MustCompile(`(?i)<script`)
	figureRE    = regexp.MustCompile(`(?s)<figure class="chart" data-chart="([a-z0-9-]+)">(.*?)</figure>`)
)

func TestWriteReportsHTML(t *testing.T) {
	dir, r := writeSample(t)
	page := readFile(t, filepath.Join(dir, "report.html"))
	if m := externalRef.FindString(page); m != "" {
		t.Errorf("report.html refers to an external resource: %s", m)
	}
	if m := cssURL.FindString(page); m != "" {
		t.Errorf("report.html's CSS loads something external: %s", m)
	}
	if scriptTag.MatchString(page) {
		t.Error("report.html has a script; the charts need none")
	}
	figs := figureRE.FindAllStringSubmatch(page, -1)
	if want := 4 * len(r.Scenarios); len(figs) != want {
		t.Fatalf("got %d chart figures, want %d", len(figs), want)
	}
	seen := map[string]bool{}
	for _, f := range figs {
		if seen[f[1]] {
			t.Errorf("data-chart %q twice", f[1])
		}
		seen[f[1]] = true
		if !strings.Contains(f[2], "<svg") {
			t.Errorf("chart %s has no <svg", f[1])
		}
	}
	for _, id := range []string{"throughput-mixed", "latency-mixed", "cpu-mixed", "memory-cpu"} {
		if !seen[id] {
			t.Errorf("no chart %q", id)
		}
	}
	for _, s := range append([]string{"failed: plugin did not start", "Failures", "8120", "<table"}, r.Strategies...) {
		if !strings.Contains(page, s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
	// Text is escaped, in the tables and in the charts.
	if strings.Contains(page, "<no such file>") || !strings.Contains(page, "&lt;no such file&gt;") {
		t.Error("a failure reason is not escaped")
	}
}

func TestEscapesNames(t *testing.T) {
	r := sampleReport()
	r.Strategies[1] = `<b>"sem"&co</b>`
	for i := range r.Results {
		if r.Results[i].Strategy == "semaphore" {
			r.Results[i].Strategy = r.Strategies[1]
		}
	}
	page, err := r.HTML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(page), `<b>"sem"`) || strings.Contains(string(page), `"sem"&co`) {
		t.Error("a strategy name went into report.html unescaped")
	}
	// The swatch, two tables, and the x axis of 8 charts.
	if n := strings.Count(string(page), "&lt;b&gt;"); n < 11 {
		t.Errorf("the escaped name appears %d times, want at least 11", n)
	}
}

func TestEdgeCases(t *testing.T) {
	// Every strategy failed; a strategy has no result at all; a lone strategy.
	r := sampleReport()
	r.Strategies = append(r.Strategies, "ghost")
	for i := range r.Results {
		if r.Results[i].Scenario == "cpu" {
			r.Results[i] = Result{Strategy: r.Results[i].Strategy, Scenario: "cpu", Failed: "broken"}
		}
	}
	if err := WriteReports(t.TempDir(), r); err != nil {
		t.Fatal(err)
	}
	if md := r.Markdown(); !strings.Contains(md, "| ghost | no result |") {
		t.Errorf("no row for a strategy without results:\n%s", md)
	}
	one := &Report{Strategies: []string{"inproc"}, Scenarios: r.Scenarios[:1], Results: r.Results[:1]}
	if err := WriteReports(t.TempDir(), one); err != nil {
		t.Fatal(err)
	}
	if err := WriteReports(t.TempDir(), &Report{}); err != nil {
		t.Fatal(err)
	}
}

func TestNumberFormats(t *testing.T) {
	for _, c := range []struct {
		v          float64
		num, short string
	}{
		{0, "0", "0"}, {12345, "12345", "12.3k"}, {123.4, "123", "123"}, {12.34, "12.3", "12.3"},
		{1.234, "1.23", "1.23"}, {1.5, "1.5", "1.5"}, {1, "1", "1"}, {0.01234, "0.0123", "0.0123"},
		{2.5e6, "2500000", "2.5M"},
	} {
		if got := num(c.v); got != c.num {
			t.Errorf("num(%v) = %q, want %q", c.v, got, c.num)
		}
		if got := short(c.v); got != c.short {
			t.Errorf("short(%v) = %q, want %q", c.v, got, c.short)
		}
	}
	for _, c := range []struct {
		top  float64
		last string
	}{{15230, "20k"}, {0, "1.5"}, {41, "50"}, {0.9, "1.5"}, {3.3e6, "4M"}} {
		ticks := yTicks(c.top)
		if got := ticks[len(ticks)-1]; got.Label != c.last || got.Value < c.top {
			t.Errorf("yTicks(%v) ends at %+v, want label %q", c.top, got, c.last)
		}
	}
}

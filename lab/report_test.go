package lab

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/client"
)

// sampleReport is a lab run made up by hand: three strategies, four
// scenarios, six rounds; semaphore is clearly slower under mixed, pool
// does not differ from inproc under cpu in a significant way, and pool
// fails under cpu in one round and sustains only the lowest capacity rate.
func sampleReport() *Report {
	lat := func(p50, p99, max float64) client.Percentiles {
		return client.Percentiles{Count: 1000, Min: p50 / 4, Mean: p50 * 1.2, P50: p50, P90: (p50 + p99) / 2, P99: p99, P999: max * 0.9, Max: max}
	}
	// wobble spreads a figure over the rounds: ±3 % in a fixed pattern.
	wobble := func(v float64, round int) float64 { return v * (1 + 0.01*float64([]int{0, 3, -2, 1, -3, 2}[round-1])) }
	trial := func(round int, tput, p50, p99 float64, kinds map[string]client.Percentiles, json bool) Trial {
		l := map[string]client.Percentiles{"all": lat(wobble(p50, round), wobble(p99, round), p99*3)}
		for k, v := range kinds {
			l[k] = v
		}
		s := &client.Summary{
			URL: "ws://127.0.0.1:8765/ws", Protocol: "plain", Mode: "duration", Clients: 200, Pipeline: 4,
			WallSeconds: 1, Sent: int64(tput), Replies: int64(tput), OK: int64(tput),
			Errors: map[string]int64{}, Throughput: wobble(tput, round), Latency: l,
		}
		if json {
			s.Protocol = "json"
			s.Queue = map[string]client.Percentiles{"all": lat(p50*0.2, p99*0.2, p99)}
			s.Run = map[string]client.Percentiles{"all": lat(p50*0.5, p99*0.5, p99)}
		}
		return Trial{Round: round, Summary: s, CPUSeconds: wobble(tput*0.0004, round), PeakRSSMB: wobble(40, round), Processes: 2}
	}
	kinds := map[string]client.Percentiles{"fib": lat(0.4, 3, 9), "cpu": lat(4.1, 25, 80), "io": lat(0.9, 7, 30)}
	r := &Report{
		Started:       time.Date(2026, 3, 1, 14, 5, 6, 0, time.UTC),
		Seconds:       83.4,
		Machine:       Machine{CPUs: 8, GoVersion: "go1.26.0", OS: "linux/amd64", Kernel: "6.1.0", CPUModel: "Test CPU"},
		ConfigPath:    "config.ini",
		Rounds:        6,
		SLOP99MS:      50,
		CapacityTasks: []string{"fib", "cpu", "io"},
		Strategies:    []string{"inproc", "semaphore", "pool"},
		Scenarios: []Scenario{
			{Name: "mixed", Description: "Every connection sends fib, cpu and io, as the Python lab did.",
				Load: "200 clients × fib, cpu, io"},
			{Name: "cpu", Description: "CPU-bound tasks only: sums of integers.", Load: "4 clients × cpu (n=2000000), 4 s"},
			{Name: "rtt", Description: "One noop at a time.", Load: "1 clients × 300 noop, json, sequence once"},
			{Name: "capacity", Description: "Open loop.", Load: "16 clients × fib, cpu, io, json, at 100, 200, 400 tasks/s"},
		},
	}
	add := func(strategy, scenario string, mk func(round int) Trial) {
		res := Result{Strategy: strategy, Scenario: scenario}
		for round := 1; round <= 6; round++ {
			res.Trials = append(res.Trials, mk(round))
		}
		r.Results = append(r.Results, res)
	}
	add("inproc", "mixed", func(n int) Trial { return trial(n, 15230, 1.21, 19.7, kinds, false) })
	add("semaphore", "mixed", func(n int) Trial {
		t := trial(n, 8120.5, 3.2, 41, kinds, false)
		if n == 2 {
			t.Summary.Errors = map[string]int64{"overloaded": 3}
			t.Summary.Missing = 2
		}
		return t
	})
	add("pool", "mixed", func(n int) Trial { return trial(n, 12944, 1.9, 25, kinds, false) })
	add("inproc", "cpu", func(n int) Trial { return trial(n, 612.4, 6.5, 12.2, nil, true) })
	add("semaphore", "cpu", func(n int) Trial { return trial(n, 598.1, 6.7, 13.1, nil, true) })
	add("pool", "cpu", func(n int) Trial {
		if n == 4 {
			return Trial{Round: n, Failed: "plugin did not start: exec: bin/plugins/pool: <no such file> | see logs\nsecond line"}
		}
		return trial(n, 605, 6.6, 12.5, nil, true)
	})
	// timed gives an rtt trial the timeline of its noops: the stages and
	// the µs to each from the one before.
	timed := func(t Trial, stages []string, us ...float64) Trial {
		var spans []client.StageSpan
		for i, u := range us {
			spans = append(spans, client.StageSpan{From: stages[i], To: stages[i+1], P50: wobble(u, t.Round), Count: 300})
		}
		t.Summary.Timing = map[string][]client.StageSpan{"noop": spans}
		return t
	}
	inprocStages := []string{"client_sent", "host_read", "host_submit", "task_start", "task_end", "reply_written", "client_recv"}
	hopStages := []string{"client_sent", "host_read", "host_submit", "host_sent", "plugin_recv", "task_start", "task_end",
		"plugin_sent", "host_recv", "reply_written", "client_recv"}
	add("inproc", "rtt", func(n int) Trial {
		return timed(trial(n, 9000, 0.066, 0.2, nil, true), inprocStages, 25, 5, 0.1, 0.1, 1, 28)
	})
	add("semaphore", "rtt", func(n int) Trial {
		return timed(trial(n, 5000, 0.119, 0.4, nil, true), hopStages, 26, 3, 0.2, 22, 7, 0.1, 0.4, 24, 2, 29)
	})
	add("pool", "rtt", func(n int) Trial {
		return timed(trial(n, 6000, 0.102, 0.3, nil, true), hopStages, 25, 3, 0.2, 20, 6, 0.1, 0.4, 21, 2, 27)
	})
	// Under cpu the hosts' /metrics were read: semaphore's not in round 3,
	// and its host answered two more (overloaded) than its client counted
	// in round 5; pool's plugin restarted in round 2.
	for i := range r.Results {
		if res := &r.Results[i]; res.Scenario == "cpu" {
			for j := range res.Trials {
				if t := &res.Trials[j]; t.Summary != nil {
					t.Summary.Host = sampleHostView(res.Strategy, t.Round, t.Summary)
				}
			}
		}
	}
	for _, st := range r.Strategies {
		c := Capacity{Strategy: st}
		for i, rate := range []float64{100, 200, 400} {
			pt := CapacityPoint{Rate: rate}
			for round := 1; round <= 6; round++ {
				p99 := wobble(5*float64(i+1), round)
				if st == "pool" && i > 0 || i == 2 {
					p99 = wobble(80*float64(i), round)
				}
				pt.Trials = append(pt.Trials, CapacityTrial{Round: round, P50: p99 / 4, P99: p99, Throughput: rate, Sustained: p99 <= 50})
			}
			c.Points = append(c.Points, pt)
		}
		r.Capacity = append(r.Capacity, c)
	}
	sampleLadder(r, trial)
	r.aggregate()
	return r
}

// sampleHostView is the host's own account of a sample trial.
func sampleHostView(strategy string, round int, s *client.Summary) *client.HostView {
	url := "http://127.0.0.1:8765/metrics"
	if strategy == "semaphore" && round == 3 {
		return &client.HostView{URL: url, Error: "after the run: GET " + url + ": context deadline exceeded"}
	}
	v := &client.HostView{
		URL: url, Strategy: strategy, TasksTotal: s.Replies,
		Tasks: map[string]map[string]int64{"cpu": {"ok": s.OK}}, Outcomes: map[string]int64{"ok": s.OK},
		Queue:             map[string]client.HostTimes{"all": {Count: s.OK, Mean: 0.4, P50: 0.25, P90: 1, P99: 2}},
		Run:               map[string]client.HostTimes{"all": {Count: s.OK, Mean: 5.5, P50: 5, P90: 8, P99: 10}},
		ConnectionsOpened: 4, Refused: map[string]int64{}, Closed: map[string]int64{"client": 4},
	}
	if strategy != "inproc" {
		restarts := int64(0)
		if strategy == "pool" && round == 2 {
			restarts = 1
		}
		v.PluginRestarts = &restarts
	}
	if strategy == "semaphore" && round == 5 {
		v.TasksTotal += 2
		v.Outcomes["overloaded"] = 2
		v.Tasks["cpu"]["overloaded"] = 2
	}
	return v
}

func writeSample(t *testing.T) (string, *Report) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out") // WriteReports creates it
	r := sampleReport()
	if _, err := WriteReports(dir, r); err != nil {
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
	got, err := ReadReport(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Started.Equal(want.Started) || got.Seconds != want.Seconds || got.Machine != want.Machine ||
		got.ConfigPath != want.ConfigPath || got.Rounds != 6 || strings.Join(got.Strategies, ",") != strings.Join(want.Strategies, ",") {
		t.Errorf("header: got %+v", got)
	}
	if len(got.Scenarios) != len(want.Scenarios) || len(got.Results) != len(want.Results) || len(got.Capacity) != 3 {
		t.Fatalf("got %d scenarios, %d results, %d capacity curves", len(got.Scenarios), len(got.Results), len(got.Capacity))
	}
	for i, g := range got.Results {
		w := want.Results[i]
		if g.Strategy != w.Strategy || g.Scenario != w.Scenario || g.Failed != w.Failed || len(g.Trials) != 6 ||
			g.Throughput.Median != w.Throughput.Median || g.P99.Lo != w.P99.Lo || g.Errors != w.Errors {
			t.Errorf("result %d: got %+v, want %+v", i, g, w)
		}
	}
	// What the estimates say of the sample.
	sem := got.result("semaphore", "mixed")
	if sem.Errors != 5 || !sem.VsInproc.Throughput.Significant || sem.VsInproc.Throughput.Ratio > 0.6 || !sem.Throughput.Bounded {
		t.Errorf("semaphore under mixed: %+v", sem)
	}
	if pool := got.result("pool", "cpu"); pool.Throughput.N() != 5 || !strings.HasPrefix(pool.Failed, "round 4: plugin did not start") {
		t.Errorf("pool under cpu: %d trials measured, failed %q", pool.Throughput.N(), pool.Failed)
	}
	if sp := got.result("pool", "rtt").Spans; len(sp) != 10 || sp[3].From != "host_sent" || !sp[3].Crossing || sp[3].Kind != "host→plugin" ||
		sp[3].Micros < 19 || sp[3].Micros > 21 || sp[5].Kind != "task" || sp[8].Kind != "host" || sp[8].Crossing {
		t.Errorf("pool's rtt spans: %+v", sp)
	}
	if iso := got.result("pool", "rtt").IsolationUS; iso == nil || iso.Median < 30 || iso.Median > 40 {
		t.Errorf("pool's isolation cost %+v, want about 36 µs", iso)
	}
	if h := got.result("pool", "cpu").Host; h == nil || h.Rounds != 5 || h.PluginRestarts == nil || *h.PluginRestarts != 1 ||
		h.WorkerRestarts != nil || h.Closed["client"] != 20 || h.Unmatched != 0 || h.RunP99.Median != 10 {
		t.Errorf("pool's host view under cpu: %+v", h)
	}
	if h := got.result("semaphore", "cpu").Host; h == nil || h.Rounds != 5 || h.Unmatched != 2 || h.NotOK["overloaded"] != 2 ||
		!strings.HasPrefix(h.Unread, "round 3: after the run: GET http://127.0.0.1:8765/metrics") {
		t.Errorf("semaphore's host view under cpu: %+v", h)
	}
	if h := got.result("inproc", "mixed").Host; h != nil {
		t.Errorf("a host view where none was read: %+v", h)
	}
	for _, c := range got.Capacity {
		want := 200.0
		if c.Strategy == "pool" {
			want = 100
		}
		if c.Sustained != want {
			t.Errorf("%s's capacity %v, want %v", c.Strategy, c.Sustained, want)
		}
	}
}

func TestWriteReportsMarkdown(t *testing.T) {
	dir, r := writeSample(t)
	md := readFile(t, filepath.Join(dir, "report.md"))
	if md != r.Markdown() {
		t.Error("report.md differs from Markdown()")
	}
	for _, s := range append(append([]string{"failed", "2026-03-01", "8 CPUs (Test CPU)", "1m23s", "| strategy |", "6 rounds"}, r.Strategies...),
		"## Verdict", "## mixed", "## cpu", "## capacity", "200 clients × fib, cpu, io", "isolation µs over inproc",
		"Where a noop's round trip goes", "host: host_read → host_submit, host_submit → host_sent, host_submit → task_start, task_end → reply_written, host_recv → reply_written;",
		"host→plugin ⇄: host_sent → plugin_recv;") {
		if !strings.Contains(md, s) {
			t.Errorf("report.md lacks %q", s)
		}
	}
	if strings.Index(md, "## Verdict") > strings.Index(md, "## mixed") {
		t.Error("the verdict does not come first")
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
	// The first semaphore row is under mixed: a median of 8161 tasks/s
	// (8120.5 + 0.5 %) between the extremes (−3.5 %), 3 error replies + 2
	// missing, no queue time in plain text.
	if got, want := row("| semaphore |"), "| semaphore | 8161 ±3% | −46.7% | 3.22 ±3% | 41.2 ±3% | +108% | 5 | 402 ±3% | – | – | 40.2 ±3% | 2 |"; got != want {
		t.Errorf("semaphore row:\n got %s\nwant %s", got, want)
	}
	// Where the round trip goes: a column per kind of span some strategy
	// passes, in path order; inproc's noops pass no plugin.
	if got, want := row("| strategy | client→host"), "| strategy | client→host ⇄ µs | host µs | host→plugin ⇄ µs | plugin µs | task µs | plugin→host ⇄ µs | host→client ⇄ µs | sum µs |"; got != want {
		t.Errorf("timeline header:\n got %s\nwant %s", got, want)
	}
	if got, want := row("| pool | 25.1"), "| pool | 25.1 | 5.23 | 20.1 | 6.43 | 0.101 | 21.1 | 27.1 | 105 |"; got != want {
		t.Errorf("pool's timeline:\n got %s\nwant %s", got, want)
	}
	if got, want := row("| inproc | 25.1"), "| inproc | 25.1 | 6.13 | – | – | 0.101 | – | 28.1 | 59.5 |"; got != want {
		t.Errorf("inproc's timeline:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(row("- **mixed**"), "inproc is best at 15306 tasks/s, 1.18× ahead of the next, pool (p = 0.002)") {
		t.Errorf("mixed verdict: %s", row("- **mixed**"))
	}
	if v := row("- **cpu**"); !strings.Contains(v, "no significant difference between inproc") {
		t.Errorf("cpu verdict: %s", v)
	}
	if v := row("- **capacity**"); !strings.Contains(v, "inproc 200 tasks/s") || !strings.Contains(v, "pool 100 tasks/s") {
		t.Errorf("capacity verdict: %s", v)
	}
	if v := row("- **isolation**"); !strings.Contains(v, "semaphore +53") {
		t.Errorf("isolation verdict: %s", v)
	}
	if !strings.Contains(md, "- pool under cpu: `round 4: plugin did not start: exec: bin/plugins/pool: <no such file> | see logs second line`") {
		t.Error("the failure is not listed")
	}
	if !strings.Contains(md, "Latency per task kind") {
		t.Error("report.md lacks the per-kind table of mixed")
	}
	// The hosts' own counts: under cpu alone, where they were read.
	if n := strings.Count(md, hostTableTitle); n != 1 || strings.Index(md, hostTableTitle) < strings.Index(md, "## cpu") ||
		strings.Index(md, hostTableTitle) > strings.Index(md, "## rtt") {
		t.Errorf("the host's table appears %d times, or not under cpu", n)
	}
	if got, want := row("| strategy | host tasks"), "| strategy | host tasks | host − client | not ok | queue p50 / p99 ms | run p50 / p99 ms | plugin restarts | worker restarts | refused | closed |"; got != want {
		t.Errorf("host table header:\n got %s\nwant %s", got, want)
	}
	for prefix, want := range map[string]string{
		"| inproc | 612 ":       "| inproc | 612 | 0 | 0 | 0.25 / 2 | 5 / 10 | – | – | 0 | client 24 |",
		"| semaphore | 598 ":    "| semaphore | 598 ±∞ (5 of 6 rounds) | 2 | overloaded 2 | 0.25 / 2 | 5 / 10 | 0 | – | 0 | client 20 |",
		"| pool | 605 ±∞ | 0 |": "| pool | 605 ±∞ | 0 | 0 | 0.25 / 2 | 5 / 10 | 1 | – | 0 | client 20 |",
	} {
		if got := row(prefix); got != want {
			t.Errorf("host row:\n got %s\nwant %s", got, want)
		}
	}
	if !strings.Contains(md, "interpolated within their buckets as Prometheus's histogram_quantile does") ||
		!strings.Contains(md, "Not read: semaphore, round 3: after the run: GET http://127.0.0.1:8765/metrics: context deadline exceeded.") {
		t.Error("report.md does not explain the host's table, or not why a round's metrics were not read")
	}
}

var (
	externalRef = regexp.MustCompile(`(?i)\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//`)
	cssURL      = regexp.MustCompile(`(?i)(?:url\(\s*["']?\s*(?:https?:)?//|@import)`)
	scriptTag   = regexp.MustCompile(`(?i)<script`)
	figureRE    = regexp.MustCompile(`(?s)<figure class="chart(?: wide)?" data-chart="([a-z0-9-]+)">(.*?)</figure>`)
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
	var ids []string
	for _, f := range figureRE.FindAllStringSubmatch(page, -1) {
		ids = append(ids, f[1])
		if !strings.Contains(f[2], "<svg") || strings.Contains(f[2], "NaN") {
			t.Errorf("chart %s has no <svg or a NaN in it", f[1])
		}
	}
	// Plain text (mixed) carries no queue time; rtt adds the isolation
	// costs; capacity has its curves alone, the ladder its own three.
	want := "throughput-mixed latency-mixed cpu-mixed memory-mixed " +
		"throughput-cpu latency-cpu time-cpu cpu-cpu memory-cpu " +
		"isolation waterfall throughput-rtt latency-rtt time-rtt cpu-rtt memory-rtt capacity " +
		"ladder-noop ladder-memory ladder-startup"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("charts:\n got %s\nwant %s", got, want)
	}
	for _, s := range append([]string{"round 4: plugin did not start", "Failures", "8161", "<table", "Verdict"}, r.Strategies...) {
		if !strings.Contains(page, s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
	// The waterfall spans the page: a bar per strategy with a timeline, its
	// legend and the timeline table below.
	if !strings.Contains(page, `<figure class="chart wide" data-chart="waterfall">`) {
		t.Error("the waterfall is not a wide figure")
	}
	for _, s := range []string{"Where a noop’s round trip goes, µs (medians over the rounds)", "host→plugin ⇄ µs", "The stages each column covers",
		"<h3>" + hostTableTitle + "</h3>", "<th>host − client</th>", "<td>598 ±∞ (5 of 6 rounds)</td>", "histogram_quantile"} {
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
	if _, err := WriteReports(t.TempDir(), r); err != nil {
		t.Fatal(err)
	}
	if md := r.Markdown(); !strings.Contains(md, "| ghost | no result |") {
		t.Errorf("no row for a strategy without results:\n%s", md)
	}
	one := &Report{Strategies: []string{"inproc"}, Scenarios: r.Scenarios[:1], Results: r.Results[:1]}
	if _, err := WriteReports(t.TempDir(), one); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteReports(t.TempDir(), &Report{}); err != nil {
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

// A strategy that sustains every rate offered has a capacity above the
// ladder, and the report says so rather than naming the top rate as its
// limit.
func TestCapacityAboveTheLadder(t *testing.T) {
	r := &Report{Rounds: 2, SLOP99MS: 50}
	for _, st := range []string{"fast", "slow"} {
		c := Capacity{Strategy: st}
		for _, rate := range []float64{100, 200} {
			pt := CapacityPoint{Rate: rate}
			for round := 1; round <= 2; round++ {
				ok := st == "fast" || rate == 100
				pt.Trials = append(pt.Trials, CapacityTrial{Round: round, P50: 1, P99: 2, Throughput: rate, Offered: 100, Sustained: ok})
			}
			c.Points = append(c.Points, pt)
		}
		c.summarise(r.Rounds)
		r.Capacity = append(r.Capacity, c)
	}
	if got := capacityCell(&r.Capacity[0]); got != "≥ 200 tasks/s" {
		t.Errorf("fast: %q, want ≥ 200 tasks/s", got)
	}
	if got := capacityCell(&r.Capacity[1]); got != "100 tasks/s" {
		t.Errorf("slow: %q, want 100 tasks/s", got)
	}
	v := r.capacityVerdict()
	if !strings.Contains(v, "fast ≥ 200 tasks/s, slow 100 tasks/s") || !strings.Contains(v, "200/s is the highest rate offered, so fast may carry more") {
		t.Errorf("verdict: %s", v)
	}
}

// A strategy whose hosts' metrics were never read says why; a contender
// serves none, and says so.
func TestHostTableUnread(t *testing.T) {
	r := sampleReport()
	r.Contenders = []Contender{{Name: "pool", Command: "pool-server --port {port}"}}
	for _, st := range []string{"semaphore", "pool"} {
		res := r.result(st, "cpu")
		for i := range res.Trials {
			if s := res.Trials[i].Summary; s != nil {
				s.Host = nil
				if st == "semaphore" {
					s.Host = &client.HostView{URL: "http://127.0.0.1:1/metrics", Error: "before the run: GET http://127.0.0.1:1/metrics: 401 Unauthorized"}
				}
			}
		}
	}
	r.aggregate()
	md := r.Markdown()
	for _, want := range []string{
		"| semaphore | not read: round 1: before the run: GET http://127.0.0.1:1/metrics: 401 Unauthorized |",
		"| pool | an outside server: no /metrics |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if _, err := WriteReports(t.TempDir(), r); err != nil {
		t.Fatal(err)
	}
}

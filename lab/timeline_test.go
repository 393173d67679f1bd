package lab

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestSpanLabels(t *testing.T) {
	for _, tc := range []struct {
		from, to, label string
		crossing        bool
	}{
		{"client_sent", "host_read", "client → host", true},
		{"host_read", "host_submit", "host: read → submit", false},
		{"host_submit", "task_start", "host: submit → task start", false},
		{"task_end", "reply_written", "host: task end → written", false},
		{"host_sent", "worker_recv", "host → worker", true},
		{"plugin_recv", "nats_publish", "plugin: recv → publish", false},
		{"nats_publish", "nats_deliver", "plugin → worker", true},
		{"worker_recv", "task_start", "worker: recv → task start", false},
		{"worker_sent", "nats_result", "worker → plugin", true},
		{"reply_written", "client_recv", "host → client", true},
	} {
		s := Span{From: tc.from, To: tc.to, Crossing: crosses(tc.from, tc.to)}
		if s.Crossing != tc.crossing || s.Label() != tc.label {
			t.Errorf("%s → %s: %q crossing %v, want %q %v", tc.from, tc.to, s.Label(), s.Crossing, tc.label, tc.crossing)
		}
	}
}

// A figure a run could not measure is null in bench.json, not the end of
// the file.
func TestBenchJSONWithNaN(t *testing.T) {
	b := &Bench{Strategies: []BenchStrategy{{Name: "adaptive", PythonLabSeconds: math.NaN(), Spans: []Span{{From: "a", To: "b", Micros: 2}}}}}
	data, err := json.Marshal(jsonSafe(reflect.ValueOf(b)))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Strategies []map[string]any `json:"strategies"`
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	s := back.Strategies[0]
	if v, ok := s["python_lab_s"]; !ok || v != nil || s["name"] != "adaptive" || s["spans"] == nil {
		t.Errorf("got %s", data)
	}
}

// spansAlong are the spans between consecutive stages, each of us µs.
func spansAlong(us float64, stages ...string) []Span {
	var out []Span
	for i := 1; i < len(stages); i++ {
		out = append(out, newSpan(stages[i-1], stages[i], us))
	}
	return out
}

var (
	inprocPath      = []string{"client_sent", "host_read", "host_submit", "task_start", "task_end", "reply_written", "client_recv"}
	poolPath        = []string{"client_sent", "host_read", "host_submit", "host_sent", "plugin_recv", "task_start", "task_end", "plugin_sent", "host_recv", "reply_written", "client_recv"}
	multiprocPath   = []string{"client_sent", "host_read", "host_submit", "host_sent", "worker_recv", "task_start", "task_end", "worker_sent", "host_recv", "reply_written", "client_recv"}
	distributedPath = []string{"client_sent", "host_read", "host_submit", "host_sent", "plugin_recv", "nats_publish", "nats_deliver", "worker_recv",
		"task_start", "task_end", "worker_sent", "nats_result", "plugin_sent", "host_recv", "reply_written", "client_recv"}
)

func kindsOf(spans []Span) string {
	var k []string
	for _, s := range spans {
		k = append(k, s.Kind)
	}
	return strings.Join(k, " ")
}

func TestSpanKinds(t *testing.T) {
	for _, tc := range []struct {
		path  []string
		kinds string
	}{
		{inprocPath, "client→host host host task host host→client"},
		{poolPath, "client→host host host host→plugin plugin task plugin plugin→host host host→client"},
		{multiprocPath, "client→host host host host→worker worker task worker worker→host host host→client"},
		{distributedPath, "client→host host host host→plugin plugin plugin→worker worker worker task worker worker→plugin plugin plugin→host host host→client"},
	} {
		if got := kindsOf(spansAlong(1, tc.path...)); got != tc.kinds {
			t.Errorf("%v:\n got %s\nwant %s", tc.path, got, tc.kinds)
		}
	}
}

func TestSpanColumns(t *testing.T) {
	in, dist := spansAlong(1, inprocPath...), spansAlong(2, distributedPath...)
	// Given in another order than the path's, and one strategy after the
	// other: the columns are in path order all the same.
	in[0], in[5] = in[5], in[0]
	cols := spanColumns(in, dist)
	var names []string
	for _, c := range cols {
		names = append(names, c.header())
	}
	if got, want := strings.Join(names, " | "), "client→host ⇄ | host | host→plugin ⇄ | plugin | plugin→worker ⇄ | worker | task | worker→plugin ⇄ | plugin→host ⇄ | host→client ⇄"; got != want {
		t.Errorf("columns:\n got %s\nwant %s", got, want)
	}
	if got, want := strings.Join(cols[1].Covers, ", "), "host_read → host_submit, host_submit → host_sent, host_submit → task_start, task_end → reply_written, host_recv → reply_written"; got != want {
		t.Errorf("host covers:\n got %s\nwant %s", got, want)
	}
	if legend := spanLegend(cols); legend[4] != "plugin→worker ⇄: nats_publish → nats_deliver" || legend[6] != "task: task_start → task_end" {
		t.Errorf("legend %q", legend)
	}
	// inproc passes no plugin and no worker; its host's work adds up.
	totals := kindTotals(spansAlong(1, inprocPath...), cols)
	for i, want := range []float64{1, 3, math.NaN(), math.NaN(), math.NaN(), math.NaN(), 1, math.NaN(), math.NaN(), 1} {
		if got := totals[i]; got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("inproc's %s: %v, want %v", cols[i].Kind, got, want)
		}
	}
	if got := spansTotal(dist); got != 30 {
		t.Errorf("distributed's sum %v, want 30", got)
	}
}

func TestSegments(t *testing.T) {
	// Consecutive spans of one colour make one segment; a link's two
	// directions share a blue; only crossings are hatched.
	segs := segments(spansAlong(1, distributedPath...))
	var got []string
	for _, s := range segs {
		h := waterfallHues[s.hue]
		if h.crossing != strings.Contains(h.key, "-") {
			t.Errorf("%s: crossing %v", h.key, h.crossing)
		}
		got = append(got, h.key+"="+num(s.micros))
	}
	want := "client-host=1 host=2 host-plugin=1 plugin=1 plugin-worker=1 worker=2 task=1 worker=1 plugin-worker=1 plugin=1 host-plugin=1 host=1 client-host=1"
	if strings.Join(got, " ") != want {
		t.Errorf("segments:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if h := waterfallHues[hueOf("somewhere")]; h.key != "other" {
		t.Errorf("an unknown kind is coloured %s", h.key)
	}
	if hueOf("worker→host") != hueOf("host→worker") || hueOf("host→worker") == hueOf("host→plugin") {
		t.Error("a link's directions do not share a colour, or two links do")
	}
}

func TestWaterfallSVG(t *testing.T) {
	svg, err := waterfallSVG("Where", "µs", []string{"inproc", "<b>x</b>"}, [][]segment{
		segments(spansAlong(10, inprocPath...)), segments(spansAlong(20, distributedPath...))})
	if err != nil {
		t.Fatal(err)
	}
	s := string(svg)
	for _, want := range []string{"<svg", "inproc", "&lt;b&gt;x&lt;/b&gt;", "60 µs", "300 µs", "client – host", "plugin – worker", "the task"} {
		if !strings.Contains(s, want) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
	if strings.Contains(s, "<b>") || strings.Contains(s, "NaN") {
		t.Error("the SVG has an unescaped name or a NaN")
	}
}

func TestWriteSpans(t *testing.T) {
	var b bytes.Buffer
	writeSpans(&b, []BenchStrategy{
		{Name: "inproc", Spans: spansAlong(1, inprocPath...)},
		{Name: "broken"},
		{Name: "multiproc", Spans: spansAlong(2, multiprocPath...)},
	})
	out := b.String()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "where a noop's round trip goes (µs, median") {
		t.Errorf("title %q", lines[0])
	}
	header := strings.Fields(lines[1])
	if got, want := strings.Join(header, " "), "strategy client→host ⇄ host host→worker ⇄ worker task worker→host ⇄ host→client ⇄ sum"; got != want {
		t.Errorf("header:\n got %s\nwant %s", got, want)
	}
	if got, want := strings.Join(strings.Fields(lines[2]), " "), "inproc 1.0 3.0 - - 1.0 - 1.0 6.0"; got != want {
		t.Errorf("inproc:\n got %s\nwant %s", got, want)
	}
	if got, want := strings.Join(strings.Fields(lines[3]), " "), "multiproc 2.0 6.0 2.0 4.0 2.0 2.0 2.0 20.0"; got != want {
		t.Errorf("multiproc:\n got %s\nwant %s", got, want)
	}
	for _, want := range []string{"host→worker ⇄: host_sent → worker_recv", "worker: worker_recv → task_start, task_end → worker_sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("the legend lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "broken") {
		t.Error("a strategy without a timeline has a row")
	}
}

// benchSample is a bench's samples over two trials: pool meets its
// targets, multiproc misses some, distributed has no cpu figure.
func benchSample() *Bench {
	b := &Bench{Trials: 2, Samples: map[string][]float64{
		"floor.unix_rtt_us":           {40, 20},
		"floor.nats_rtt_us":           {200, 100},
		"floor.bare_pipelined_per_s":  {100000, 50000},
		"floor.python_lab_task_us":    {1000},
		"inproc.rtt_p50_us":           {60, 50},
		"inproc.pipelined_per_s":      {90000, 40000},
		"inproc.cpu_per_s":            {1000, 2000},
		"inproc.cpu_us_per_noop":      {20, 10},
		"pool.rtt_p50_us":             {160, 100}, // hop 100, 50: 2.5 Unix floors in both
		"pool.pipelined_per_s":        {81000, 36000},
		"pool.cpu_per_s":              {990, 1980},
		"pool.cpu_us_per_noop":        {25, 12},
		"multiproc.rtt_p50_us":        {260, 150}, // hop 200, 100: 5 floors
		"multiproc.pipelined_per_s":   {45000, 20000},
		"multiproc.cpu_per_s":         {900, 1800},
		"multiproc.cpu_us_per_noop":   {50, 15},
		"distributed.rtt_p50_us":      {360, 200}, // hop 300, 150: 1.5 NATS floors
		"distributed.pipelined_per_s": {30000, 12000},
		"distributed.cpu_us_per_noop": {60, 50},
	}}
	for i, v := range []float64{9, 11} {
		b.noteSpans("pool", []Span{newSpan("host_sent", "plugin_recv", v), newSpan("client_sent", "host_read", v)})
		b.Samples["pool.span.host_sent>plugin_recv"] = append(b.Samples["pool.span.host_sent>plugin_recv"], v)
		b.Samples["pool.span.client_sent>host_read"] = append(b.Samples["pool.span.client_sent>host_read"], float64(20+i))
	}
	b.Memory = BenchMemory{Connections: 10000, KiBPerConn: 7.5}
	return b
}

func TestBenchSummarise(t *testing.T) {
	b := benchSample()
	b.summarise([]string{"inproc", "pool", "multiproc", "distributed"}, map[string]string{"distributed": "cpu: broken"})
	by := map[string]BenchStrategy{}
	for _, s := range b.Strategies {
		by[s.Name] = s
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	near("pool hop", by["pool"].HopMicros, 75)
	near("pool hop/Unix", by["pool"].HopOverUnix, 2.5)
	near("multiproc hop/Unix", by["multiproc"].HopOverUnix, 5)
	near("distributed hop/NATS", by["distributed"].HopOverNATS, 1.5)
	near("pool pipelined/inproc", by["pool"].PipelinedVsIn, (0.9+0.9)/2)
	near("inproc pipelined/bare", by["inproc"].PipelinedVsBare, (0.9+0.8)/2)
	near("pool cpu/inproc", by["pool"].CPUVsIn, 0.99)
	near("pool CPU per noop/inproc", by["pool"].CPUPerNoopVsIn, (1.25+1.2)/2)
	near("multiproc CPU per noop/inproc", by["multiproc"].CPUPerNoopVsIn, (2.5+1.5)/2)
	if by["pool"].HopOverNATS != 0 || by["distributed"].Failed != "cpu: broken" {
		t.Errorf("pool's hop/NATS %v, distributed failed %q", by["pool"].HopOverNATS, by["distributed"].Failed)
	}
	// The spans in path order, each the median of its trials.
	if sp := by["pool"].Spans; len(sp) != 2 || sp[0].From != "client_sent" || sp[0].Micros != 20.5 || sp[1].Micros != 10 || sp[1].Kind != "host→plugin" {
		t.Errorf("pool's spans %+v", sp)
	}
	verdict := map[string]string{}
	for _, tg := range b.Targets {
		v := "met"
		switch {
		case math.IsNaN(tg.Value):
			v = "not measured"
		case !tg.Met:
			v = "missed"
		}
		verdict[tg.Figure+" "+tg.Target] = v
	}
	for figure, want := range map[string]string{
		"inproc pipelined noop / bare gorilla server ≥ 0.85":        "met",
		"inproc cpu throughput / in-process limit ≥ 0.85":           "not measured", // no limit before its cpu run
		"pool hop / Unix floor ≤ 3":                                 "met",
		"pool pipelined noop / inproc ≥ 0.8":                        "met",
		"pool cpu throughput / inproc ≥ 0.95":                       "met",
		"pool CPU per noop / inproc ≤ 1.5":                          "met",
		"multiproc hop / Unix floor ≤ 4":                            "missed",
		"multiproc pipelined noop / inproc ≥ 0.6":                   "missed",
		"multiproc cpu throughput / inproc ≥ 0.95":                  "missed",
		"multiproc CPU per noop / inproc ≤ 2":                       "met",
		"distributed hop / bare NATS request-reply ≤ 2":             "met",
		"distributed pipelined noop / inproc ≥ 0.3":                 "met",
		"distributed CPU per noop / inproc ≤ 4":                     "met",
		"memory per idle connection at 10000 connections (KiB) ≤ 8": "met",
	} {
		if got := verdict[figure]; got != want {
			t.Errorf("%s: %q, want %q", figure, got, want)
		}
	}
	if len(verdict) != 14 {
		t.Errorf("%d targets, want 14: %v", len(verdict), verdict)
	}
	var out bytes.Buffer
	b.WriteTable(&out)
	for _, want := range []string{"hop/NATS", "NOT MEASURED", "MISSED", "where a noop's round trip goes", "bare NATS request/reply"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBenchTargetsMemoryFailed(t *testing.T) {
	// A failed memory figure is not measured, not met at 0 KiB.
	tg := benchTargets(nil, BenchMemory{Connections: 10000, Failed: "holder: EOF"})
	if len(tg) != 1 || !math.IsNaN(tg[0].Value) || tg[0].Met {
		t.Errorf("targets %+v", tg)
	}
	// semaphore and adaptive have the pool's targets; adaptive no CPU per noop.
	tg = benchTargets([]BenchStrategy{{Name: "adaptive", HopOverUnix: 3, PipelinedVsIn: 0.79, CPUVsIn: 0.95}}, BenchMemory{Connections: 10, KiBPerConn: 8.5})
	var got []string
	for _, x := range tg {
		got = append(got, x.Figure+" "+x.Target+" "+map[bool]string{true: "met", false: "missed"}[x.Met])
	}
	want := "adaptive hop / Unix floor ≤ 3 met; adaptive pipelined noop / inproc ≥ 0.8 missed; adaptive cpu throughput / inproc ≥ 0.95 met; " +
		"memory per idle connection at 10 connections (KiB) ≤ 8 missed"
	if strings.Join(got, "; ") != want {
		t.Errorf("targets:\n got %s\nwant %s", strings.Join(got, "; "), want)
	}
}

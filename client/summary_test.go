package client

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/config"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(math.Abs(b), 1e-9) }

func TestHistogramMergeAndPercentiles(t *testing.T) {
	// 1..10000 µs split over two shards, as two connections would record them.
	shards := []*shard{{}, {}}
	for i := int64(1); i <= 10000; i++ {
		shards[i%2].add([]record{{kind: kindCPU, lat: i, queue: -1, run: i / 2, lag: -1}})
	}
	shards[0].add([]record{{kind: kindFib, lat: 50_000, queue: 3, run: -1, lag: -1}})
	// Out of range values are clamped, not dropped.
	shards[1].add([]record{{kind: kindIO, lat: 2 * histHighUS, queue: -5, run: -1, lag: -1}})

	lat := mergeKinds(shards, func(s *shard) *[numKinds]*hdrHist { return &s.lat })
	m := summarise(lat, []int{kindCPU, kindNoop})
	cpu := m["cpu"]
	if cpu.Count != 10000 || !near(cpu.P50, 5.0, 0.002) || !near(cpu.P90, 9.0, 0.002) ||
		!near(cpu.P99, 9.9, 0.002) || !near(cpu.P999, 9.99, 0.002) || !near(cpu.Max, 10.0, 0.002) ||
		!near(cpu.Min, 0.001, 0.001) || !near(cpu.Mean, 5.0005, 0.002) {
		t.Errorf("cpu %+v", cpu)
	}
	if m["fib"].Count != 1 || !near(m["fib"].Max, 50, 0.001) {
		t.Errorf("fib %+v", m["fib"])
	}
	if m["io"].Count != 1 || !near(m["io"].Max, float64(histHighUS)/1000, 0.001) {
		t.Errorf("io %+v (clamped to 1 h)", m["io"])
	}
	if noop, ok := m["noop"]; !ok || noop.Count != 0 {
		t.Errorf("a wanted kind with no values is listed empty: %+v %v", noop, ok)
	}
	if all := m["all"]; all.Count != 10002 || all.Max < 3.6e6*0.999 {
		t.Errorf("all %+v", all)
	}
	if _, ok := m["sleep"]; ok {
		t.Error("sleep listed without values or wish")
	}
	q := mergeKinds(shards, func(s *shard) *[numKinds]*hdrHist { return &s.queue })
	if q[kindFib].TotalCount() != 1 || q[kindIO] != nil || q[kindCPU] != nil {
		t.Errorf("queue histograms wrong")
	}
}

func TestExactPercentiles(t *testing.T) {
	var v []float64
	for i := 100; i >= 1; i-- {
		v = append(v, float64(i))
	}
	p := exactPercentiles(v)
	if p.Count != 100 || p.Min != 1 || p.Max != 100 || p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.P999 != 100 || p.Mean != 50.5 {
		t.Errorf("%+v", p)
	}
	if (exactPercentiles(nil) != Percentiles{}) {
		t.Error("empty not zero")
	}
}

func goodSummary() *Summary {
	return &Summary{
		Sent: 10, Replies: 10, OK: 10, Throughput: 100, Errors: map[string]int64{},
		Latency: map[string]Percentiles{"all": {Count: 10, P99: 5}},
	}
}

func TestExit(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(*Summary)
		th   Thresholds
		code int
		want string
	}{
		"all right":          {func(s *Summary) {}, Thresholds{}, ExitOK, ""},
		"within thresholds":  {func(s *Summary) {}, Thresholds{MaxP99: 6 * time.Millisecond, MinRate: 50}, ExitOK, ""},
		"wrong":              {func(s *Summary) { s.Wrong = 1 }, Thresholds{}, ExitIncorrect, "1 wrong reply"},
		"missing":            {func(s *Summary) { s.Missing = 2 }, Thresholds{}, ExitIncorrect, "2 replies missing"},
		"unsent":             {func(s *Summary) { s.Unsent = 3 }, Thresholds{}, ExitIncorrect, "3 requests never sent"},
		"conn failure":       {func(s *Summary) { s.ConnFailures = 1 }, Thresholds{}, ExitIncorrect, "1 connection failure"},
		"errors":             {func(s *Summary) { s.Errors["overloaded"] = 2 }, Thresholds{}, ExitIncorrect, "2 error replies, more than --max-errors 0 (overloaded 2)"},
		"errors allowed":     {func(s *Summary) { s.Errors["overloaded"] = 2 }, Thresholds{MaxErrors: 2}, ExitOK, ""},
		"interrupted":        {func(s *Summary) { s.Interrupted = true }, Thresholds{}, ExitIncorrect, "interrupted"},
		"nothing sent":       {func(s *Summary) { s.Sent = 0 }, Thresholds{}, ExitIncorrect, "no request was sent"},
		"p99":                {func(s *Summary) {}, Thresholds{MaxP99: time.Microsecond}, ExitThreshold, "p99 latency 5.000 ms is above --max-p99 1µs"},
		"min rate":           {func(s *Summary) {}, Thresholds{MinRate: 1000}, ExitThreshold, "throughput 100.0 tasks/s is below --min-rate 1000"},
		"no latency":         {func(s *Summary) { s.Latency = nil }, Thresholds{MaxP99: time.Second}, ExitThreshold, "no latency"},
		"wrong beats thresh": {func(s *Summary) { s.Wrong = 1 }, Thresholds{MinRate: 1000}, ExitIncorrect, "below --min-rate"},
	} {
		t.Run(name, func(t *testing.T) {
			s := goodSummary()
			tc.mod(s)
			code, reasons := s.Exit(tc.th)
			if code != tc.code {
				t.Errorf("code %d, want %d (reasons %q)", code, tc.code, reasons)
			}
			if got := strings.Join(reasons, "; "); tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("reasons %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWriteReport(t *testing.T) {
	s := goodSummary()
	s.Clients, s.Tasks, s.Protocol, s.Mode, s.Pipeline = 3, []string{"cpu", "noop"}, "json", ModeDuration, 4
	s.DurationSeconds = 2
	s.Latency = map[string]Percentiles{"cpu": {Count: 5, P50: 1.5}, "noop": {Count: 5}, "all": {Count: 10}}
	s.Queue = map[string]Percentiles{"cpu": {P50: 0.01}, "all": {}}
	s.Run = map[string]Percentiles{"cpu": {P50: 1.2}, "all": {}}
	s.ClientSeconds = Percentiles{Count: 3, Max: 2000}
	s.Errors["timeout"] = 1
	s.WrongSamples = []string{"client 1: cpu: got 1"}
	var b bytes.Buffer
	s.WriteReport(&b)
	out := b.String()
	for _, want := range []string{"3 clients × cpu, noop, json, pipeline 4, for 2s", "errors         timeout 1",
		"cpu                5     1.500", "host time ms", "client completion s (3 clients)", "max 2.000", "client 1: cpu: got 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// main runs the command in-process.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := MainContext(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestMainUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ini")
	os.WriteFile(bad, []byte("[client]\nnum_client = many\n"), 0o600)
	good := filepath.Join(dir, "good.ini")
	os.WriteFile(good, []byte("[server]\nhost = 127.0.0.1\nport = 1\n"), 0o600)
	zero := filepath.Join(dir, "zero.ini")
	os.WriteFile(zero, []byte("[server]\nport = 0\n"), 0o600)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"bad config":         {[]string{"--config", bad}, "bad.ini: [client] num_client: \"many\" is not a whole number"},
		"missing config":     {[]string{"--config", filepath.Join(dir, "nope.ini")}, "cannot read file"},
		"port 0":             {[]string{"--config", zero}, "[server] port is 0"},
		"unknown flag":       {[]string{"--config", good, "--bogus"}, "flag provided but not defined"},
		"bad int":            {[]string{"--config", good, "--clients", "x"}, "invalid value"},
		"zero clients":       {[]string{"--config", good, "--clients", "0"}, "--clients: must be a whole number between 1"},
		"protocol":           {[]string{"--config", good, "--protocol", "xml"}, "--protocol must be plain or json"},
		"plain pipeline":     {[]string{"--config", good, "--pipeline", "4"}, "--pipeline 4 needs --protocol json"},
		"rate no duration":   {[]string{"--config", good, "--protocol", "json", "--rate", "10"}, "--rate needs --duration"},
		"rate plain":         {[]string{"--config", good, "--rate", "10", "--duration", "1s"}, "--rate needs --protocol json"},
		"bad n":              {[]string{"--config", good, "--protocol", "json", "--n", "cpu"}, "not kind=value"},
		"bad n kind":         {[]string{"--config", good, "--protocol", "json", "--n", "gpu=3"}, "unknown task"},
		"negative n":         {[]string{"--config", good, "--protocol", "json", "--n", "cpu=-3"}, "whole number"},
		"bad tasks":          {[]string{"--config", good, "--tasks", "fib,nope"}, `--tasks: unknown task "nope"`},
		"bad duration":       {[]string{"--config", good, "--duration", "soon"}, "invalid value"},
		"negative p99":       {[]string{"--config", good, "--max-p99", "-1s"}, "--max-p99"},
		"negative errors":    {[]string{"--config", good, "--max-errors", "-1"}, "--max-errors"},
		"negative min rate":  {[]string{"--config", good, "--min-rate", "-1"}, "--min-rate"},
		"argument":           {[]string{"--config", good, "extra"}, "unexpected argument"},
		"json path":          {[]string{"--config", good, "--json", filepath.Join(dir, "no", "such", "dir.json")}, "--json"},
		"bad url":            {[]string{"--config", good, "--url", "http://x/"}, "scheme"},
		"bad reply timeout":  {[]string{"--config", good, "--reply-timeout", "0s"}, "--reply-timeout"},
		"bad metrics url":    {[]string{"--config", good, "--metrics", "127.0.0.1:1/metrics"}, "--metrics"},
		"sleep word plainly": {[]string{"--config", good, "--tasks", "sleep"}, "needs --protocol json"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runMain(t, tc.args...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, ExitUsage, tc.want)
			}
		})
	}
	// A bad configuration is one line.
	_, _, stderr := runMain(t, "--config", bad)
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("config error is not one line: %q", stderr)
	}
	if code, _, _ := runMain(t, "--help"); code != ExitOK {
		t.Errorf("--help exit %d", code)
	}
}

func TestOptionsFromConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.ini")
	os.WriteFile(path, []byte("[server]\nhost = '0.0.0.0'\nport = 9000\ntimeout_sec = 7\nauth_token = s3cret\n"+
		"[client]\nnum_client = 12\ntasks = io, 2\n[task_setting]\nfibonacci_limit = 300\n"), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	o := OptionsFromConfig(cfg)
	if o.URL != "ws://127.0.0.1:9000/ws" || o.Clients != 12 || strings.Join(o.Tasks, ",") != "io,2" || o.FibN != 300 ||
		o.ReplyTimeout != 12*time.Second || o.Protocol != "plain" || o.Pipeline != 1 || o.Token != "s3cret" {
		t.Errorf("%+v", o)
	}
}

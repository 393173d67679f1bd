package client

import (
	"bytes"
	"context"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wslab/wslab/host"
	"github.com/wslab/wslab/internal/config"
	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/internal/wsproto"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

// hostRegistry is the host's own metrics registry and what it counts,
// served on a loopback port as the host serves it.
type hostRegistry struct {
	metrics *telemetry.HostMetrics
	url     string
}

func newHostRegistry(t *testing.T, strategy string) *hostRegistry {
	t.Helper()
	reg := telemetry.NewRegistry(plugin.ProtocolVersion)
	m := telemetry.NewHostMetrics(reg, strategy)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return &hostRegistry{metrics: m, url: srv.URL + "/metrics"}
}

// ran observes n tasks of kind that queued q and ran r seconds.
func (h *hostRegistry) ran(kind string, n int, q, r float64) {
	for i := range n {
		h.metrics.Answered(uint64(i), kind, "", taskproto.Result{Queue: seconds(q), Run: seconds(r)}, true)
	}
}

func (h *hostRegistry) failed(kind string, n int, code taskproto.Code) {
	for i := range n {
		h.metrics.Answered(uint64(i), kind, code, taskproto.Result{}, false)
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func scrapeOf(t *testing.T, url, token string) families {
	t.Helper()
	f, err := newMetricsScraper(&plan{opt: Options{MetricsURL: url, Token: token}}).scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestHostViewOfRealRegistry: the host's registry, scraped before and
// after known observations, gives exactly the observations made between
// the scrapes, and quantiles interpolated in its buckets as
// histogram_quantile would.
func TestHostViewOfRealRegistry(t *testing.T) {
	h := newHostRegistry(t, "pool")
	// Before the run: what an earlier run left, which must not count.
	h.ran(taskproto.KindNoop, 500, 0.02, 0.02)
	h.ran(taskproto.KindCPU, 50, 0, 0.02)
	h.failed(taskproto.KindCPU, 3, taskproto.CodeOverloaded)
	h.metrics.Opened()
	h.metrics.Closed(telemetry.ClosedByClient)
	before := scrapeOf(t, h.url, "")

	// The run. noop: 100 queued 0.3 ms, in (0.25, 0.5] ms; ran 10 × 2 ms in
	// (1, 2.5], 80 × 4 ms in (2.5, 5], 10 × 8 ms in (5, 10].
	h.ran(taskproto.KindNoop, 10, 0.0003, 0.002)
	h.ran(taskproto.KindNoop, 80, 0.0003, 0.004)
	h.ran(taskproto.KindNoop, 10, 0.0003, 0.008)
	// cpu: 4 × 20 ms in (10, 25], one past the last finite bound (60 s).
	h.ran(taskproto.KindCPU, 4, 0, 0.02)
	h.ran(taskproto.KindCPU, 1, 0, 120)
	h.failed(taskproto.KindIO, 2, taskproto.CodeTimeout)
	h.failed("no such kind", 1, taskproto.CodeUnknownTask)
	for range 3 {
		h.metrics.Opened()
	}
	h.metrics.Closed(telemetry.ClosedByClient)
	h.metrics.Closed(telemetry.ClosedByClient)
	h.metrics.Closed(telemetry.ClosedIdle)
	for range 4 {
		h.metrics.Refused(telemetry.RefusedFull)
	}
	after := scrapeOf(t, h.url, "")
	v := newHostView(h.url, before, after, nil)

	if v.Strategy != "pool" || v.TasksTotal != 108 || v.NotOK() != 3 {
		t.Errorf("strategy %q, %d tasks, %d not ok; want pool, 108, 3", v.Strategy, v.TasksTotal, v.NotOK())
	}
	wantTasks := map[string]map[string]int64{
		"noop": {"ok": 100}, "cpu": {"ok": 5}, "io": {"timeout": 2}, telemetry.Other: {"unknown_task": 1},
	}
	if !equalNested(v.Tasks, wantTasks) {
		t.Errorf("tasks %v, want %v", v.Tasks, wantTasks)
	}
	if !equalCounts(v.Outcomes, map[string]int64{"ok": 105, "timeout": 2, "unknown_task": 1}) {
		t.Errorf("outcomes %v", v.Outcomes)
	}
	checkTimes := func(what string, got HostTimes, want HostTimes) {
		t.Helper()
		if got.Count != want.Count || !near(got.Mean, want.Mean, 1e-6) || !near(got.P50, want.P50, 1e-9) ||
			!near(got.P90, want.P90, 1e-9) || !near(got.P99, want.P99, 1e-9) {
			t.Errorf("%s: %+v, want %+v", what, got, want)
		}
	}
	// Ranks 50, 90, 99 of 100 in (0.25, 0.5] ms: 0.25 + 0.25 × rank/100.
	checkTimes("noop queue", v.Queue["noop"], HostTimes{Count: 100, Mean: 0.3, P50: 0.375, P90: 0.475, P99: 0.4975})
	// Rank 50: 40th of the 80 in (2.5, 5]; rank 90: the last of them;
	// rank 99: 9th of the 10 in (5, 10].
	checkTimes("noop run", v.Run["noop"], HostTimes{Count: 100, Mean: 4.2, P50: 3.75, P90: 5, P99: 9.5})
	// Rank 2.5 of 5: in (10, 25] ms, 2.5 of its 4; rank 4.5 and 4.95 are in
	// +Inf, which gives the highest finite bound.
	checkTimes("cpu run", v.Run["cpu"], HostTimes{Count: 5, Mean: (4*20 + 120000) / 5.0, P50: 10 + 15*2.5/4, P90: 60000, P99: 60000})
	if all := v.Run["all"]; all.Count != 105 || !near(all.Mean, (100*4.2+4*20+120000)/105, 1e-6) {
		t.Errorf("run over all kinds: %+v", all)
	}
	if _, ok := v.Run["io"]; ok {
		t.Error("io is listed among the run times: none of its tasks ran")
	}
	if v.ConnectionsOpened != 3 || !equalCounts(v.Refused, map[string]int64{"max_connections": 4}) ||
		!equalCounts(v.Closed, map[string]int64{"client": 2, "idle_timeout": 1}) {
		t.Errorf("connections: %d opened, refused %v, closed %v", v.ConnectionsOpened, v.Refused, v.Closed)
	}
	if v.PluginRestarts != nil || v.WorkerRestarts != nil {
		t.Errorf("restarts %v, %v: a registry without a plugin reports none", v.PluginRestarts, v.WorkerRestarts)
	}

	// What the summary prints of it.
	var b strings.Builder
	(&Summary{Replies: 108, Host: v}).WriteReport(&b)
	for _, s := range []string{
		"host /metrics  " + h.url + ": what the host counted during the run (strategy pool)",
		"answered     108 (the client counted 108 replies): ok 105, timeout 2, unknown_task 1",
		"restarts     plugin –, workers –",
		"connections  3 opened; refused: max_connections 4; closed: client 2, idle_timeout 1",
		"noop                 100     0.375     0.475     0.497       3.750     5.000     9.500",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("the report lacks %q:\n%s", s, b.String())
		}
	}
}

// TestHostViewAcrossARestart: a host that restarted between the scrapes
// (a fresh registry) has counters below the first scrape's; the view
// counts from zero, as Prometheus's increase() does, instead of going
// negative.
func TestHostViewAcrossARestart(t *testing.T) {
	old := newHostRegistry(t, "inproc")
	old.ran(taskproto.KindNoop, 50, 0.001, 0.001)
	old.failed(taskproto.KindNoop, 5, taskproto.CodeOverloaded)
	before := scrapeOf(t, old.url, "")
	fresh := newHostRegistry(t, "inproc")
	fresh.ran(taskproto.KindNoop, 7, 0.001, 0.001)
	v := newHostView(fresh.url, before, scrapeOf(t, fresh.url, ""), nil)
	if v.TasksTotal != 7 || v.Run["noop"].Count != 7 || v.Queue["all"].Count != 7 || len(v.Outcomes) != 1 {
		t.Errorf("after a reset: %d tasks, run %+v, outcomes %v; want 7 ok", v.TasksTotal, v.Run["noop"], v.Outcomes)
	}
}

func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, c := range []struct {
		q       float64
		buckets []bucket
		want    float64
	}{
		{0.5, []bucket{{1, 0}, {2, 10}, {inf, 10}}, 1.5},
		{0.5, []bucket{{1, 10}, {inf, 10}}, 0.5}, // the lowest bucket starts at 0
		{1, []bucket{{1, 5}, {2, 10}, {inf, 10}}, 2},
		{0.99, []bucket{{1, 5}, {2, 5}, {inf, 10}}, 2},        // in +Inf: the highest finite bound
		{0.5, []bucket{{-1, 10}, {inf, 10}}, -1},              // a non-positive lowest bound is returned as is
		{0.5, []bucket{{1, 6}, {2, 4}, {inf, 10}}, 1 - 1.0/6}, // a count going down is evened out
	} {
		if got := bucketQuantile(c.q, c.buckets); !near(got, c.want, 1e-12) {
			t.Errorf("bucketQuantile(%v, %v) = %v, want %v", c.q, c.buckets, got, c.want)
		}
	}
	for _, b := range [][]bucket{nil, {{inf, 0}}, {{1, 0}, {inf, 0}}, {{1, 1}, {2, 2}}} {
		if got := bucketQuantile(0.5, b); !math.IsNaN(got) {
			t.Errorf("bucketQuantile(0.5, %v) = %v, want NaN", b, got)
		}
	}
	if (histDelta{}).times() != (HostTimes{}) {
		t.Error("no observations: the times are not zero")
	}
}

// inprocStrategy is the host's built-in strategy, ready from the start.
type inprocStrategy struct{ *strategy.Inproc }

func (inprocStrategy) Ready() bool { return true }

// startInprocHost serves a real host with the inproc strategy on a
// loopback port, behind token, until the test ends.
func startInprocHost(t *testing.T, token string) string {
	t.Helper()
	cfg := config.Default()
	cfg.Server.DataDir = t.TempDir()
	scfg := host.StrategyConfig(cfg, host.Inproc)
	srv := host.NewServer(host.Options{
		Strategy:             inprocStrategy{strategy.NewInproc(scfg)},
		Defaults:             wsproto.Defaults{FibN: cfg.TaskSetting.FibonacciLimit},
		Limits:               scfg.Limits,
		TaskTimeout:          cfg.Server.Timeout,
		MaxFrameBytes:        cfg.Limits.MaxFrameBytes,
		MaxInflight:          int(cfg.Limits.MaxInflightPerConn),
		MaxQueued:            cfg.Limits.MaxQueued,
		MaxPendingReplyBytes: cfg.Limits.MaxPendingReplyBytes,
		MinReplyReadRate:     cfg.Limits.MinReplyReadRate,
		MaxConnections:       int(cfg.Limits.MaxConnections),
		AuthToken:            token,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown(time.Second)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestRunReadsTheHostsMetrics: a run against a real host, which wants a
// token, reports the host's count of what it answered, equal to the
// replies the client counted, and the connections it opened and closed.
func TestRunReadsTheHostsMetrics(t *testing.T) {
	addr := startInprocHost(t, "s3cret")
	opt := Options{
		URL: "ws://" + addr + "/ws", MetricsURL: "http://" + addr + "/metrics", Token: "s3cret",
		Clients: 4, Pipeline: 4, Protocol: "json", Tasks: []string{"noop", "cpu", "noop"},
		N: map[string]int64{"cpu": 10000}, Duration: 300 * time.Millisecond, ReplyTimeout: 10 * time.Second,
	}
	metered := 0
	opt.OnLoad = func() func() {
		metered++
		return func() { metered++ }
	}
	s, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if code, reasons := s.Exit(Thresholds{}); code != ExitOK {
		t.Fatalf("exit %d: %v", code, reasons)
	}
	v := s.Host
	if v == nil || v.Error != "" {
		t.Fatalf("host view %+v", v)
	}
	if v.TasksTotal != s.Replies || v.Outcomes["ok"] != s.OK || v.Tasks["noop"]["ok"]+v.Tasks["cpu"]["ok"] != s.OK {
		t.Errorf("the host counted %d tasks (%v), the client %d replies, %d ok", v.TasksTotal, v.Tasks, s.Replies, s.OK)
	}
	if v.Run["all"].Count != s.OK || v.Queue["cpu"].Count != v.Tasks["cpu"]["ok"] || v.Run["cpu"].P50 <= 0 {
		t.Errorf("run times %+v, queue times %+v for %d right results", v.Run, v.Queue, s.OK)
	}
	if v.Strategy != host.Inproc || v.ConnectionsOpened != 4 || v.Closed["client"] != 4 || len(v.Refused) != 0 || len(v.Notes) != 0 {
		t.Errorf("strategy %q, connections %d opened, closed %v, refused %v; notes %v", v.Strategy, v.ConnectionsOpened, v.Closed, v.Refused, v.Notes)
	}
	if metered != 2 {
		t.Errorf("OnLoad and its end were called %d times in all, want 2", metered)
	}
	var b bytes.Buffer
	s.WriteReport(&b)
	t.Logf("\n%s", b.String())
}

// TestRunSurvivesUnreadableMetrics: a scrape that fails (refused, the
// wrong token, not an exposition, too large) does not fail the run; the
// summary says why the host's view is missing.
func TestRunSurvivesUnreadableMetrics(t *testing.T) {
	addr := startInprocHost(t, "s3cret")
	other := startInprocHost(t, "other") // wants another token than the run's
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := "http://" + closed.Addr().String() + "/metrics"
	closed.Close()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>not metrics</html>"))
	}))
	defer page.Close()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		line := []byte("# a comment that never ends the exposition\n")
		for n := 0; n <= maxMetricsBytes; n += len(line) {
			if _, err := w.Write(line); err != nil {
				return
			}
		}
	}))
	defer huge.Close()
	for _, c := range []struct{ url, want string }{
		{nowhere, "before the run: GET " + nowhere},
		{"http://" + other + "/metrics", "401 Unauthorized"},
		{page.URL, "not Prometheus's text format"},
		{huge.URL, "larger than 4194304 bytes"},
	} {
		s, err := Run(context.Background(), Options{
			URL: "ws://" + addr + "/ws", MetricsURL: c.url, Token: "s3cret", Clients: 1,
			Protocol: "json", Tasks: []string{"noop"}, ReplyTimeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if code, reasons := s.Exit(Thresholds{}); code != ExitOK {
			t.Errorf("%s: exit %d: %v", c.url, code, reasons)
		}
		if s.Host == nil || !strings.Contains(s.Host.Error, c.want) {
			t.Errorf("%s: host view %+v, want an error with %q", c.url, s.Host, c.want)
		}
		var b strings.Builder
		s.WriteReport(&b)
		if !strings.Contains(b.String(), "host /metrics  could not be read: ") {
			t.Errorf("%s: the report does not say the host's metrics were not read:\n%s", c.url, b.String())
		}
	}
	if _, err := Run(context.Background(), Options{URL: "ws://" + addr + "/ws", MetricsURL: "ws://" + addr + "/metrics",
		Clients: 1, Tasks: []string{"fib"}}); err == nil || !strings.Contains(err.Error(), "--metrics") {
		t.Errorf("a ws:// metrics URL: %v, want an error naming --metrics", err)
	}
}

func equalCounts(a, b map[string]int64) bool { return maps.Equal(a, b) }

func equalNested(a, b map[string]map[string]int64) bool {
	return maps.EqualFunc(a, b, maps.Equal[map[string]int64])
}

// TestHostViewBesideOtherConnections: connections an earlier client just
// closed are not counted in the run (the scrape before waits for their
// closes), and one another client keeps open throughout neither counts
// nor holds up the scrapes.
func TestHostViewBesideOtherConnections(t *testing.T) {
	addr := startInprocHost(t, "")
	dial := func() *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		return ws
	}
	kept := dial()
	defer kept.Close()
	for range 3 { // an earlier run's, closed as the run starts
		ws := dial()
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		ws.Close()
	}
	start := time.Now()
	s, err := Run(context.Background(), Options{
		URL: "ws://" + addr + "/ws", MetricsURL: "http://" + addr + "/metrics", Clients: 2,
		Protocol: "json", Tasks: []string{"noop", "noop"}, ReplyTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	v := s.Host
	if v == nil || v.Error != "" || len(v.Notes) != 0 {
		t.Fatalf("host view %+v", v)
	}
	var closed int64
	for _, n := range v.Closed {
		closed += n
	}
	if v.ConnectionsOpened != 2 || closed != 2 || v.Closed["client"] != 2 || v.TasksTotal != 4 {
		t.Errorf("%d opened, closed %v, %d tasks; want the run's 2 connections and 4 tasks", v.ConnectionsOpened, v.Closed, v.TasksTotal)
	}
	if took > settleWait {
		t.Errorf("the run took %v: a connection that stays open held up the scrapes", took)
	}
}

package host

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/taskproto"
)

// liveStream is an open GET /live/events.
type liveStream struct {
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// openLive opens the live stream of ts, with query and header added to
// the request, failing the test unless it answers want. It is closed when
// the test ends.
func openLive(t *testing.T, ts *testServer, query string, header http.Header, want int) *liveStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.httpURL()+"/live/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /live/events: %v", err)
	}
	if resp.StatusCode != want {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /live/events%s: %d %q, want %d", query, resp.StatusCode, body, want)
	}
	ls := &liveStream{resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(ls.close)
	return ls
}

func (ls *liveStream) close() {
	ls.cancel()
	ls.resp.Body.Close()
}

// next reads the stream's next stats event, within guard.
func (ls *liveStream) next(t *testing.T) LiveEvent {
	t.Helper()
	type result struct {
		ev  LiveEvent
		err error
	}
	got := make(chan result, 1)
	go func() { // ends with the read: the body is closed at cleanup at the latest
		ev, err := readLiveEvent(ls.r)
		got <- result{ev, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("read live event: %v", r.err)
		}
		return r.ev
	case <-time.After(guard):
		ls.close()
		t.Fatalf("no live event within %s", guard)
	}
	return LiveEvent{}
}

// readLiveEvent reads one "stats" event, skipping other fields (retry).
func readLiveEvent(r *bufio.Reader) (LiveEvent, error) {
	var name, data string
	for range 1000 { // lines of one event, at most
		line, err := r.ReadString('\n')
		if err != nil {
			return LiveEvent{}, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if name == "stats" {
				var ev LiveEvent
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					return LiveEvent{}, fmt.Errorf("event data %q: %w", data, err)
				}
				return ev, nil
			}
			name, data = "", ""
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
	return LiveEvent{}, fmt.Errorf("no end of event in 1000 lines")
}

func (ev LiveEvent) kind(t *testing.T, name string) LiveKind {
	t.Helper()
	for _, k := range ev.Kinds {
		if k.Kind == name {
			return k
		}
	}
	t.Fatalf("no kind %q in %+v", name, ev.Kinds)
	return LiveKind{}
}

// TestLiveEventJSON: the stream's first event comes at once with the
// host's state and no rates; while tasks are answered, later events carry
// their rates and percentiles by kind, over the kinds of the protocol and
// "other" only (a kind a client makes up is no key).
func TestLiveEventJSON(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t)})
	ls := openLive(t, ts, "", nil, http.StatusOK)
	if ct := ls.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	first := ls.next(t)
	if first.Strategy != "inproc" || !first.Ready || first.Draining || first.Plugin != nil {
		t.Errorf("first event: %+v", first)
	}
	if first.IntervalSeconds != 0 || first.TasksPerSecond != 0 || first.Answered != 0 {
		t.Errorf("first event has rates: %+v", first.LiveRates)
	}
	var names []string
	for _, k := range first.Kinds {
		names = append(names, k.Kind)
	}
	if want := append(slices.Clone(taskproto.Kinds), telemetry.Other); !slices.Equal(names, want) {
		t.Errorf("kinds %q, want %q", names, want)
	}

	ws := dial(t, ts)
	const noops, fibs = 200, 20
	for i := range noops + fibs + 1 {
		frame := fmt.Sprintf(`{"id":%d,"task":"noop"}`, i)
		switch {
		case i == noops+fibs:
			frame = `{"id":"x","task":"made-up-kind"}`
		case i >= noops:
			frame = fmt.Sprintf(`{"id":%d,"task":"fib","n":1000}`, i)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(guard))
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}

	var ev LiveEvent
	for range 5 { // the replies fall in the next tick or two
		ev = ls.next(t)
		if ev.Answered >= noops+fibs+1 {
			break
		}
	}
	if ev.Answered != noops+fibs+1 || ev.kind(t, "noop").Answered != noops || ev.kind(t, "fib").Answered != fibs {
		t.Fatalf("answered %d (noop %d, fib %d), want %d", ev.Answered, ev.kind(t, "noop").Answered, ev.kind(t, "fib").Answered, noops+fibs+1)
	}
	if ev.IntervalSeconds < 0.5 || ev.IntervalSeconds > 5 || ev.LatencySeconds < ev.IntervalSeconds {
		t.Errorf("interval %v s, latency window %v s", ev.IntervalSeconds, ev.LatencySeconds)
	}
	if ev.Connections != 1 || ev.Executor.Completed < noops+fibs {
		t.Errorf("connections %d, executor %+v", ev.Connections, ev.Executor)
	}
	fib, other := ev.kind(t, "fib"), ev.kind(t, telemetry.Other)
	if other.Answered != 1 || fib.ErrorsPerSecond != 0 {
		t.Errorf("other %+v, fib %+v", other, fib)
	}
	for _, l := range []LiveLatency{fib.Run, fib.Total} {
		if l.Count != fibs || l.P50 <= 0 || l.P99 < l.P50 || l.P99 > 1000 {
			t.Errorf("fib latency %+v", l)
		}
	}
	if fib.Total.P50 < fib.Run.P50*0.8 { // a bucket's precision: total includes run
		t.Errorf("fib total p50 %v ms below its run p50 %v ms", fib.Total.P50, fib.Run.P50)
	}
	if other.Run.Count != 0 || other.Total.Count != 0 {
		t.Errorf("a refused request has times: %+v", other)
	}
	// The rates of some event since the first covered the replies.
	if ev.TasksPerSecond == 0 {
		prev := ev
		ev = ls.next(t)
		if prev.Answered != ev.Answered || ev.TasksPerSecond != 0 {
			t.Errorf("rates %v, then %v with %d, then %d answered", prev.TasksPerSecond, ev.TasksPerSecond, prev.Answered, ev.Answered)
		}
	}
}

// TestLiveAuth: with auth_token set, the page and its stream answer 401
// without the token or with a wrong one, and 200 with it as a bearer
// token or ?token=; the page links nothing outside itself and says so in
// its Content-Security-Policy.
func TestLiveAuth(t *testing.T) {
	ts := startServer(t, Options{AuthToken: "s3cret"})
	get := func(path string, header http.Header) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.httpURL()+path, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(body), resp.Header
	}
	for _, path := range []string{"/live", "/live?token=wrong"} {
		if code, _, _ := get(path, nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 401", path, code)
		}
	}
	if code, _, _ := get("/live", http.Header{"Authorization": {"Bearer wrong"}}); code != http.StatusUnauthorized {
		t.Errorf("GET /live with a wrong bearer token: %d, want 401", code)
	}
	openLive(t, ts, "", nil, http.StatusUnauthorized).close()
	openLive(t, ts, "?token=wrong", nil, http.StatusUnauthorized).close()
	openLive(t, ts, "?token=s3cret", nil, http.StatusOK).next(t)
	openLive(t, ts, "", http.Header{"Authorization": {"bearer s3cret"}}, http.StatusOK).next(t)

	code, page, h := get("/live?token=s3cret", nil)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /live?token=: %d %s", code, h.Get("Content-Type"))
	}
	if code, _, _ := get("/live", http.Header{"Authorization": {"Bearer s3cret"}}); code != http.StatusOK {
		t.Errorf("GET /live with the bearer token: %d", code)
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, want := range []string{`<script>"use strict"`, "<style>", `"live/events"`, `get("token")`, `id="workers"`, `id="kinds"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, m := range regexp.MustCompile(`(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if !strings.HasPrefix(m[1], "data:") {
			t.Errorf("the page links %q", m[1])
		}
	}
	if strings.Contains(page, "s3cret") {
		t.Error("the page carries the token in its text")
	}
}

// TestLiveStreamEndsOnShutdown: an open stream ends (the client reads
// EOF) when the server shuts down, its handler has returned by the time
// Shutdown does, and no stream opens after.
func TestLiveStreamEndsOnShutdown(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t)})
	ls := openLive(t, ts, "", nil, http.StatusOK)
	ls.next(t)
	ended := make(chan error, 1)
	go func() { // ends with the stream, or when the body is closed at cleanup
		_, err := io.Copy(io.Discard, ls.r)
		ended <- err
	}()
	took := shutdownWithin(t, ts.Server, time.Second, guard)
	if took > 3*time.Second {
		t.Errorf("Shutdown with a live stream open took %s", took)
	}
	if n := ts.live.watchers.Load(); n != 0 {
		t.Errorf("%d live streams still counted after Shutdown", n)
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("the stream ended with %v, want EOF", err)
		}
	case <-time.After(guard):
		t.Fatal("the live stream did not end at Shutdown")
	}
	if !ts.openLiveStream() {
		return
	}
	ts.closeLiveStream()
	t.Error("a live stream could open after Shutdown")
}

// TestLiveStreamsBounded: maxLiveStreams streams open; the next gets 503;
// once one closes, a new one is served.
func TestLiveStreamsBounded(t *testing.T) {
	ts := startServer(t, Options{})
	var open []*liveStream
	for range maxLiveStreams {
		ls := openLive(t, ts, "", nil, http.StatusOK)
		ls.next(t)
		open = append(open, ls)
	}
	openLive(t, ts, "", nil, http.StatusServiceUnavailable)
	open[0].close()
	deadline := time.Now().Add(guard)
	for ts.live.watchers.Load() >= maxLiveStreams {
		if time.Now().After(deadline) {
			t.Fatal("a closed live stream was not counted out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	openLive(t, ts, "", nil, http.StatusOK).next(t)
}

// TestLiveHistogram: every duration falls inside its bucket's bounds, and
// the buckets cover 0 to past a minute in order; numLiveKinds is right.
func TestLiveHistogram(t *testing.T) {
	if len(liveKinds) != numLiveKinds {
		t.Fatalf("numLiveKinds is %d, liveKinds has %d", numLiveKinds, len(liveKinds))
	}
	prevHi := 0.0
	for i := range histBuckets {
		lo, hi := histBounds(i)
		if lo != prevHi || hi <= lo {
			t.Fatalf("bucket %d is [%v, %v), the one before ended at %v", i, lo, hi, prevHi)
		}
		prevHi = hi
	}
	if prevHi < float64(time.Minute) {
		t.Errorf("buckets end at %v", time.Duration(prevHi))
	}
	for _, d := range []time.Duration{0, 1, 1023, 1024, 1500, 50 * time.Microsecond, 3 * time.Millisecond, time.Second, 70 * time.Second} {
		lo, hi := histBounds(histBucket(int64(d)))
		if float64(d) < lo || float64(d) >= hi {
			t.Errorf("%v in bucket %d [%v, %v)", d, histBucket(int64(d)), lo, hi)
		}
	}
	if histBucket(int64(time.Hour)) != histBuckets-1 {
		t.Error("an hour is not clamped into the last bucket")
	}
}

// TestLiveWindow: rates are of the last tick, percentiles of the last
// liveLatencyTicks ticks (a burst slides out of them), "answered" counts
// since the stream's first snapshot, and nothing is recorded while no
// stream watches.
func TestLiveWindow(t *testing.T) {
	rec := newLiveRecorder()
	rec.answered(1, "noop", "", time.Millisecond, time.Now())
	if rec.shards[1].kinds[liveKindIndex["noop"]].answered.Load() != 0 {
		t.Fatal("recorded while nobody watched")
	}
	rec.watchers.Store(1)
	rec.answered(1, "noop", "", time.Millisecond, time.Now()) // before the stream's first snapshot
	win := &liveWindow{}
	t0 := time.Now()
	win.take(rec, t0)
	// 100 cpu tasks: 98 ran 1 ms, 2 ran 100 ms; 10 failed.
	for i := range 110 { // from connections 0 to 9, over the shards
		conn := uint64(i % 10)
		switch {
		case i < 98:
			rec.answered(conn, "cpu", "", time.Millisecond, time.Now())
		case i < 100:
			rec.answered(conn, "cpu", "", 100*time.Millisecond, time.Now())
		default:
			rec.answered(conn, "cpu", taskproto.CodeTimeout, 0, time.Now())
		}
	}
	win.take(rec, t0.Add(2*time.Second))
	r := win.rates()
	cpu := r.Kinds[liveKindIndex["cpu"]]
	if r.IntervalSeconds != 2 || cpu.TasksPerSecond != 55 || cpu.ErrorsPerSecond != 5 || cpu.Answered != 110 || r.Answered != 110 {
		t.Fatalf("rates %+v, cpu %+v", r, cpu)
	}
	if cpu.Run.Count != 100 || cpu.Run.P50 < 0.8 || cpu.Run.P50 > 1.2 || cpu.Run.P99 < 80 || cpu.Run.P99 > 120 {
		t.Errorf("cpu run %+v, want p50 ≈ 1 ms, p99 ≈ 100 ms", cpu.Run)
	}
	if cpu.Total.Count != 110 {
		t.Errorf("cpu total %+v: every admitted task has one", cpu.Total)
	}
	for i := range liveLatencyTicks - 1 {
		win.take(rec, t0.Add(time.Duration(3+i)*time.Second))
		if c := win.rates().Kinds[liveKindIndex["cpu"]]; c.TasksPerSecond != 0 || c.Run.Count != 100 {
			t.Fatalf("tick %d: cpu %+v; the burst is in the latency window, not in the rate", i, c)
		}
	}
	win.take(rec, t0.Add(10*time.Second))
	r = win.rates()
	if c := r.Kinds[liveKindIndex["cpu"]]; c.Run.Count != 0 || c.Answered != 110 || r.LatencySeconds != float64(liveLatencyTicks+3) {
		t.Errorf("after the window: cpu %+v, latency window %v s", c, r.LatencySeconds)
	}
}

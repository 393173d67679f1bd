//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/internal/browsercheck"
)

// livePageState is what TestLivePage reads off the page.
type livePageState struct {
	Events     int        `json:"events"` // stats events rendered
	Strategy   string     `json:"strategy"`
	Status     string     `json:"status"`
	TasksPerS  string     `json:"tasksPerS"`
	Answered   string     `json:"answered"`
	Plugin     string     `json:"plugin"`
	Kinds      [][]string `json:"kinds"`   // per row: kind, tasks/s, errors/s, answered, run p50, run p99, total p50, total p99
	Workers    [][]string `json:"workers"` // per row: id, pid, state, tasks, restarts, sandbox
	SparkShown bool       `json:"sparkShown"`
}

const livePageScript = `(() => {
	const $ = (id) => document.getElementById(id);
	const rows = (id) => Array.from($(id).tBodies[0].rows).map(r => Array.from(r.cells).map(c => c.textContent));
	const spark = $("spark").getBoundingClientRect();
	return {
		events: Number(document.body.dataset.events), strategy: $("strategy").textContent, status: $("status").textContent,
		tasksPerS: $("tasks-per-s").textContent, answered: $("answered").textContent, plugin: $("plugin").textContent,
		kinds: rows("kinds"), workers: rows("workers"), sparkShown: spark.width > 100 && spark.height > 50,
	};
})()`

// figure parses a number as the page writes it ("1,234", "56.7"); -1
// for "–" or anything else.
func figure(s string) float64 {
	v, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	if err != nil {
		return -1
	}
	return v
}

// TestLivePage: the live page of a real host (multiproc, two workers,
// behind auth_token) in headless Chromium while real WebSocket clients
// load it: it renders the strategy, its throughput and its answered count
// rise while the load runs, the cpu tasks show in the per-kind table with
// their percentiles, both workers show with a pid and a state, it makes
// no request but to the host, and it logs no error or exception. Without
// the token the page is refused. A screenshot is kept as the test's
// artifact (go test -artifacts).
func TestLivePage(t *testing.T) {
	if _, err := os.Stat(browsercheck.Chromium); err != nil {
		t.Skip(browsercheck.ErrNoBrowser)
	}
	const token = "s3cret"
	h := startHost(t, "multiproc", "auth_token = "+token+"\n[other]\nmultiprocessing_processes = 2\n")
	base := "http://" + h.addr
	resp, err := http.Get(base + "/live")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /live without the token: %d, want 401", resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tab, err := browsercheck.NewTab(ctx, func(u string) bool { return strings.HasPrefix(u, base+"/") || strings.HasPrefix(u, "data:") })
	if errors.Is(err, browsercheck.ErrNoBrowser) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(base+"/live?token="+token), chromedp.WaitReady("body")); err != nil {
		t.Fatalf("load the live page: %v", err)
	}
	read := func() livePageState {
		t.Helper()
		st, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[livePageState](livePageScript))
		if err != nil {
			t.Fatalf("read the live page: %v", err)
		}
		return st
	}
	st := waitPage(t, read, "the first event", func(st livePageState) bool { return st.Events >= 1 })
	if st.Strategy != "multiproc" || st.Status != "live" || !strings.HasPrefix(st.Plugin, "up, pid ") {
		t.Errorf("before load: strategy %q, status %q, plugin %q", st.Strategy, st.Status, st.Plugin)
	}
	before := figure(st.Answered)

	replies := runLiveLoad(t, h, token, 4)
	// Two readings at least a tick apart, both with load running.
	first := waitPage(t, read, "a rate under load", func(st livePageState) bool {
		return figure(st.TasksPerS) > 0 && figure(st.Answered) > before && workersShown(st)
	})
	second := waitPage(t, read, "the answered count rising", func(st livePageState) bool {
		return st.Events > first.Events && figure(st.Answered) > figure(first.Answered) && figure(st.TasksPerS) > 0
	})
	if replies.Load() == 0 {
		t.Fatal("the load got no reply")
	}
	t.Logf("page after %d events: %s tasks/s, %s answered (before %s); the clients read %d replies so far",
		second.Events, second.TasksPerS, second.Answered, first.Answered, replies.Load())
	checkKindRow(t, second, "cpu")
	checkKindRow(t, second, "noop")
	if len(second.Workers) != 2 {
		t.Errorf("workers %q, want 2 rows", second.Workers)
	}
	for _, w := range second.Workers {
		if len(w) != 6 || figure(w[1]) <= 0 || !slices.Contains([]string{"idle", "busy"}, w[2]) || figure(w[3]) < 0 || w[5] == "" {
			t.Errorf("worker row %q: want id, pid, idle or busy, tasks, restarts, sandbox", w)
		}
	}
	if !second.SparkShown {
		t.Error("the throughput sparkline takes no room")
	}

	shot, err := chromedp.Run(tab.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.ArtifactDir(), "live.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	for _, p := range tab.Problems() {
		t.Errorf("live page: %s", p)
	}
}

// workersShown says whether the page lists two workers, each with a pid.
func workersShown(st livePageState) bool {
	if len(st.Workers) != 2 {
		return false
	}
	for _, w := range st.Workers {
		if len(w) < 3 || figure(w[1]) <= 0 || w[2] == "" {
			return false
		}
	}
	return true
}

// checkKindRow says whether the page's row of kind has answered tasks and
// run and total percentiles.
func checkKindRow(t *testing.T, st livePageState, kind string) {
	t.Helper()
	i := slices.IndexFunc(st.Kinds, func(r []string) bool { return len(r) == 8 && r[0] == kind })
	if i < 0 {
		t.Errorf("no %s row in %q", kind, st.Kinds)
		return
	}
	row := st.Kinds[i]
	if figure(row[3]) <= 0 {
		t.Errorf("%s row %q: nothing answered", kind, row)
	}
	for _, c := range row[4:] {
		if !strings.HasSuffix(c, " ms") || figure(strings.TrimSuffix(c, " ms")) <= 0 {
			t.Errorf("%s row %q: a percentile is %q", kind, row, c)
		}
	}
}

// waitPage reads the page until cond holds, for up to 20 s.
func waitPage(t *testing.T, read func() livePageState, what string, cond func(livePageState) bool) livePageState {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := read()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live page did not show %s within 20 s: %+v", what, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runLiveLoad keeps conns WebSocket connections to h busy with cpu, fib
// and noop tasks, 8 in flight each, until the test ends, counting the
// replies it reads.
func runLiveLoad(t *testing.T, h *hostProc, token string, conns int) *atomic.Int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	replies := &atomic.Int64{}
	header := http.Header{"Authorization": {"Bearer " + token}}
	for c := range conns {
		ws := dialRaw(t, h, header)
		wg.Go(func() {
			defer ws.Close()
			stop := context.AfterFunc(ctx, func() { ws.Close() }) // cuts a read short
			defer stop()
			frames := []string{`"task":"cpu","n":300000`, `"task":"fib","n":2000`, `"task":"noop"`}
			const inFlight = 8
			send := func(i int) bool {
				ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
				return ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"id":"%d-%d",%s}`, c, i, frames[i%len(frames)])) == nil
			}
			for i := range inFlight {
				if !send(i) {
					return
				}
			}
			// Bounded by the test: the connection closes when ctx ends.
			for i := inFlight; ctx.Err() == nil; i++ {
				ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
				replies.Add(1)
				if !send(i) {
					return
				}
			}
		})
	}
	return replies
}

// TestLiveLab: `bin/lab --live` prints the live page of each host it
// starts, with the token of a host behind auth_token, and opens it in
// $BROWSER, here a script that fetches the page while the host runs (the
// warm-up keeps it up a second).
func TestLiveLab(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl, which the test's browser fetches the page with, is not installed")
	}
	dir := t.TempDir()
	opened := filepath.Join(dir, "opened")
	script := filepath.Join(dir, "browser")
	body := fmt.Sprintf("#!/bin/sh\ncode=$(%s -s --max-time 5 -o %s/page -w '%%{http_code}' \"$1\")\necho \"$1 $code $(grep -c '<title>wslab live</title>' %s/page)\" >> %s\n",
		curl, dir, dir, opened)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BROWSER", script)
	ini := "[server]\nauth_token = s3cret\n" + strings.Replace(tinyLab, "warmup_ms = 100", "warmup_ms = 1000", 1)
	code, _, _ := runLab(t, binDir, ini, "--live", "--strategies", "inproc,pool", "--scenarios", "rtt", "--rounds", "1")
	if code != 0 {
		t.Fatalf("lab exited %d", code)
	}
	b, err := os.ReadFile(opened)
	if err != nil {
		t.Fatalf("the browser was not run: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("the browser opened %q, want a page per host (2)", lines)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || !strings.HasPrefix(f[0], "http://127.0.0.1:") || !strings.HasSuffix(f[0], "/live?token=s3cret") || f[1] != "200" || f[2] != "1" {
			t.Errorf("the browser got %q: want the live page's URL with the token, HTTP 200 and the page", l)
		}
	}
}

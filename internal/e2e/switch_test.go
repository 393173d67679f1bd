//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/host"
	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/supervise"
)

// The strategy of a running host replaced under load, by --watch (a new
// plugin binary) and by POST /admin/strategy: every request has exactly
// one reply, every reply is right, no connection drops, and the replaced
// plugin's processes are gone.

// switchLoad is the client run the switches happen under: pipelined JSON
// from several connections, every task kind, for a bounded time.
func switchLoad(h *hostProc, during time.Duration, extra ...string) []string {
	return append([]string{"--url", h.URL, "--protocol", "json", "--clients", "4", "--pipeline", "8",
		"--duration", during.String(), "--tasks", "noop,fib,cpu,sleep,io",
		"--n", "fib=2000", "--n", "cpu=200000", "--n", "sleep=20", "--n", "io=10000",
		"--max-errors", "1000000", "--reply-timeout", "60s"}, extra...)
}

// wantAllRight checks a run of the client: every request sent had one
// reply, and every reply was a right result.
func wantAllRight(t *testing.T, what string, r clResult) {
	t.Helper()
	for _, k := range []string{"wrong", "missing", "unsent", "connection_failures"} {
		if n := num(t, r.summary, k); n != 0 {
			t.Errorf("%s: %s = %v, want 0", what, k, n)
		}
	}
	sent := num(t, r.summary, "sent")
	if sent == 0 || num(t, r.summary, "replies") != sent || num(t, r.summary, "ok") != sent {
		t.Errorf("%s: %v sent, %v replies, %v right; want all right", what, sent, num(t, r.summary, "replies"), num(t, r.summary, "ok"))
	}
	if n := sumErrors(r.summary); n != 0 {
		t.Errorf("%s: error replies %v", what, r.summary["errors"])
	}
	if r.code != 0 {
		t.Errorf("%s: client exited %d", what, r.code)
	}
}

// pluginDirOf makes a plugin directory holding a copy of each of the
// build's plugins named.
func pluginDirOf(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		installPlugin(t, filepath.Join(binDir, "plugins", n), dir, n)
	}
	return dir
}

// installPlugin puts a copy of the binary src in dir under name as a
// build would: written beside it, then renamed over it, in one step.
func installPlugin(t *testing.T, src, dir, name string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tmp := filepath.Join(dir, "."+name+".new")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// otherPoolBuild builds the pool plugin again, with a build setting the
// binary records (so its SHA-256 differs from the package's build), into
// a directory of its own.
func otherPoolBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pool")
	cmd := exec.Command("go", "build", "-ldflags=-X=main.e2eBuild=second", "-o", bin, "./plugins/pool")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the second pool: %v\n%s", err, out)
	}
	a, _ := launch.FileChecksum(filepath.Join(binDir, "plugins", "pool"))
	b, _ := launch.FileChecksum(bin)
	if hex.EncodeToString(a) == hex.EncodeToString(b) {
		t.Fatal("the second build of pool has the first one's SHA-256")
	}
	return bin
}

// startWatchedHost starts bin/host --watch with the plugin of dir.
func startWatchedHost(t *testing.T, plugin, dir, ini string) *hostProc {
	t.Helper()
	cfg := writeConfig(t, fmt.Sprintf("plugin_dir = %s\ntimeout_sec = 20\n%s", dir, ini))
	h := startHostWith(t, hostproc.Options{
		Command: []string{filepath.Join(binDir, "host"), "--config", cfg, "--plugin", plugin, "--watch", "--log-level", "debug"},
	})
	waitLog(t, h, "watching the plugin binary", 10*time.Second)
	return h
}

// waitLog waits until the host's log holds text.
func waitLog(t *testing.T, h *hostProc, text string, limit time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(h.stderr.String(), text) {
		if time.Now().After(deadline) {
			t.Errorf("the host's log lacks %q after %s", text, limit)
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// waitPID polls /stats (with token, if any) until the plugin PID is
// neither 0 nor old, nothing is retiring, and the strategy is want; it
// returns the stats then.
func waitPID(t *testing.T, h *hostProc, token, want string, old int, limit time.Duration) (host.HostStats, bool) {
	deadline := time.Now().Add(limit)
	var st host.HostStats
	for time.Now().Before(deadline) {
		st = host.HostStats{} // decoded afresh: an absent field is zero
		if err := statsWithToken(h, token, &st); err == nil && st.Strategy == want && st.PluginPID != old && st.Retiring == nil &&
			(want == host.Inproc || st.PluginPID != 0) {
			return st, true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return st, false
}

func statsWithToken(h *hostProc, token string, st *host.HostStats) error {
	if token == "" {
		return h.Stats(st)
	}
	status, body, err := hostRequest(h, http.MethodGet, "/stats", token, "", "")
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("/stats: %d %s", status, body)
	}
	return json.Unmarshal([]byte(body), st)
}

// hostRequest sends one HTTP request to the host.
func hostRequest(h *hostProc, method, path, token, contentType, body string) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+h.addr+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(data), err
}

// switchTo is POST /admin/strategy {"strategy": name}.
func switchTo(h *hostProc, token, name string) (int, host.SwitchReply, error) {
	status, body, err := hostRequest(h, http.MethodPost, "/admin/strategy", token, "application/json",
		fmt.Sprintf(`{"strategy":%q}`, name))
	var rep host.SwitchReply
	if err == nil {
		err = json.Unmarshal([]byte(body), &rep)
	}
	return status, rep, err
}

// wantGone checks that the processes pids have exited.
func wantGone(t *testing.T, what string, pids []int) {
	t.Helper()
	for _, p := range pids {
		if !supervise.WaitGone(p, 10*time.Second) {
			syscall.Kill(p, syscall.SIGKILL)
			t.Errorf("%s: process %d still runs", what, p)
		}
	}
}

// TestWatchReplacesPluginUnderLoad: bin/host --watch; while clients
// pipeline tasks, another build of the running plugin is renamed over its
// binary. The host starts it and switches to it: the load gets every reply
// right on the connections it started with, /stats names the new plugin
// process, and the old one is gone.
func TestWatchReplacesPluginUnderLoad(t *testing.T) {
	second := otherPoolBuild(t)
	dir := pluginDirOf(t, "pool")
	h := startWatchedHost(t, "pool", dir, "")
	before := h.stats(t)
	if before.PluginPID == 0 {
		t.Fatal("no plugin PID before the switch")
	}
	oldProcs := append([]int{before.PluginPID}, descendantsOf(before.PluginPID)...)

	var (
		wg         sync.WaitGroup
		switchedAt time.Time
		after      host.HostStats
		switched   bool
	)
	wg.Go(func() {
		time.Sleep(1500 * time.Millisecond) // under load
		installPlugin(t, second, dir, "pool")
		after, switched = waitPID(t, h, "", "pool", before.PluginPID, 20*time.Second)
		switchedAt = time.Now()
	})
	r := clRun(t, switchLoad(h, 9*time.Second)...)
	loadEnded := time.Now()
	wg.Wait()
	if !switched {
		t.Fatalf("the host did not switch to the new binary: /stats %+v", after)
	}
	if switchedAt.After(loadEnded) {
		t.Errorf("the switch ended at %s, after the load (%s): it was not under load", switchedAt, loadEnded)
	}
	wantAllRight(t, "watch", r)
	if num(t, r.summary, "connections") != 4 {
		t.Errorf("connections = %v, want the 4 the load began with", r.summary["connections"])
	}
	wantGone(t, "the replaced plugin", oldProcs)
	log := h.stderr.String()
	for _, w := range []string{"the plugin binary changed: starting the new one", "switched to the new plugin binary", "replaced strategy stopped"} {
		if !strings.Contains(log, w) {
			t.Errorf("the host's log lacks %q", w)
		}
	}
	t.Logf("plugin %d replaced by %d under load", before.PluginPID, after.PluginPID)

	// A touch (same content, new time) starts nothing.
	now := time.Now()
	os.Chtimes(filepath.Join(dir, "pool"), now, now)
	time.Sleep(launch.WatchSettle + 3*launch.WatchPollInterval)
	if st := h.stats(t); st.PluginPID != after.PluginPID {
		t.Errorf("a touch replaced the plugin: PID %d, was %d", st.PluginPID, after.PluginPID)
	}
	if code := h.Stop(15 * time.Second); code != 0 {
		t.Errorf("host exited %d", code)
	}
	wantGone(t, "the plugin after the host stopped", []int{after.PluginPID})
}

// TestWatchKeepsServingWhenNewBinaryFails: a new binary that panics before
// its handshake leaves the running plugin serving, every reply right, and
// the host's log says why; under verify_plugins a binary whose SHA-256 is
// not SHA256SUMS' is refused the same way, and started once the manifest
// lists it.
func TestWatchKeepsServingWhenNewBinaryFails(t *testing.T) {
	src := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { panic(\"not this build\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	panicker := filepath.Join(t.TempDir(), "pool")
	if out, err := exec.Command("go", "build", "-o", panicker, src).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	second := otherPoolBuild(t)

	t.Run("panics", func(t *testing.T) {
		dir := pluginDirOf(t, "pool")
		h := startWatchedHost(t, "pool", dir, "")
		pid := h.stats(t).PluginPID
		var wg sync.WaitGroup
		wg.Go(func() {
			time.Sleep(time.Second)
			installPlugin(t, panicker, dir, "pool")
		})
		r := clRun(t, switchLoad(h, 6*time.Second)...)
		wg.Wait()
		waitLog(t, h, "the new plugin binary did not start: the running one keeps serving", 20*time.Second)
		wantAllRight(t, "a panicking binary", r)
		log := h.stderr.String()
		for _, w := range []string{"exited before its handshake", "panic: not this build"} {
			if !strings.Contains(log, w) {
				t.Errorf("the host's log lacks %q", w)
			}
		}
		if st := h.stats(t); st.PluginPID != pid || st.Retiring != nil {
			t.Errorf("/stats plugin %d retiring %+v, want %d still serving", st.PluginPID, st.Retiring, pid)
		}
		// The same content is not tried again.
		time.Sleep(launch.WatchSettle + 3*launch.WatchPollInterval)
		if n := strings.Count(h.stderr.String(), "the plugin binary changed: starting the new one"); n != 1 {
			t.Errorf("the panicking binary was started %d times, want once", n)
		}
	})

	t.Run("checksum", func(t *testing.T) {
		dir := pluginDirOf(t, "pool")
		writeManifest(t, dir, filepath.Join(dir, "pool"))
		h := startWatchedHost(t, "pool", dir, "verify_plugins = true\n")
		pid := h.stats(t).PluginPID
		installPlugin(t, second, dir, "pool")
		waitLog(t, h, "the new plugin binary did not start", 20*time.Second)
		if !strings.Contains(h.stderr.String(), "the manifest says") {
			t.Errorf("the host's log does not say the checksum is not the manifest's")
		}
		if st := h.stats(t); st.PluginPID != pid {
			t.Errorf("plugin %d, want %d still serving", st.PluginPID, pid)
		}
		ws := h.dial(t)
		if got, err := call(ws, `{"id":1,"task":"fib","n":10}`, 10*time.Second); err != nil || decode(t, got).code() != "" {
			t.Errorf("after the refusal: %q, %v", got, err)
		}
		writeManifest(t, dir, filepath.Join(dir, "pool"))
		if st, ok := waitPID(t, h, "", "pool", pid, 20*time.Second); !ok {
			t.Errorf("the binary the manifest now lists was not started: /stats %+v", st)
		}
		wantGone(t, "the replaced plugin", []int{pid})
	})
}

// writeManifest writes dir's SHA256SUMS with the checksums of files.
func writeManifest(t *testing.T, dir string, files ...string) {
	t.Helper()
	var b strings.Builder
	for _, f := range files {
		sum, err := launch.FileChecksum(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%x  %s\n", sum, filepath.Base(f))
	}
	tmp := filepath.Join(dir, ".sums")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, launch.ChecksumsFile)); err != nil {
		t.Fatal(err)
	}
}

// TestSwitchStrategyUnderLoad: POST /admin/strategy moves a loaded host
// from pool to multiproc, then to inproc: every reply right, one each, no
// connection dropped; the replaced plugins' processes are gone; /stats,
// /metrics and the live page name the new strategy. Without the token the
// switch is 401; an unknown strategy is 400; a switch while the replaced
// strategy still holds a task is 409.
func TestSwitchStrategyUnderLoad(t *testing.T) {
	const token = "switch-s3cret"
	h := startHost(t, "pool", "auth_token = "+token+"\ntimeout_sec = 20\n[other]\nmultiprocessing_processes = 2\n")
	var pool host.HostStats
	if err := statsWithToken(h, token, &pool); err != nil || pool.PluginPID == 0 {
		t.Fatalf("/stats: %+v, %v", pool, err)
	}
	poolProcs := append([]int{pool.PluginPID}, descendantsOf(pool.PluginPID)...)

	for _, c := range []struct {
		token, body string
		status      int
	}{
		{"", "multiproc", http.StatusUnauthorized},
		{"wrong", "multiproc", http.StatusUnauthorized},
		{token, "no-such-strategy", http.StatusBadRequest},
	} {
		if status, rep, err := switchTo(h, c.token, c.body); err != nil || status != c.status {
			t.Errorf("switch to %s with token %q: %d %+v %v, want %d", c.body, c.token, status, rep, err, c.status)
		}
	}

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		steps []string
		multi host.HostStats
		final host.HostStats
	)
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, fmt.Sprintf(format, args...))
	}
	wg.Go(func() {
		time.Sleep(time.Second)
		// A long task the pool holds through the switch, on a
		// connection of its own: the switch stays in progress until the
		// pool has answered it.
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
		ws, _, err := d.Dial(h.URL, http.Header{"Authorization": {"Bearer " + token}})
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer ws.Close()
		ws.WriteMessage(websocket.TextMessage, []byte(`{"id":"long","task":"sleep","n":2500}`))
		time.Sleep(200 * time.Millisecond)
		status, rep, err := switchTo(h, token, "multiproc")
		if err != nil || status != http.StatusOK || rep.Strategy != "multiproc" {
			t.Errorf("switch to multiproc: %d %+v %v", status, rep, err)
			return
		}
		note("multiproc (pid %d)", rep.PID)
		if status, rep, err := switchTo(h, token, "inproc"); err != nil || status != http.StatusConflict {
			t.Errorf("switch while pool holds a task: %d %+v %v, want 409", status, rep, err)
		}
		if got, err := read(ws, 20*time.Second); err != nil || !strings.Contains(got, `"ok":true`) || !strings.Contains(got, `"strategy":"pool"`) {
			t.Errorf("the long task: %q %v, want answered by pool", got, err)
		}
		var ok bool
		if multi, ok = waitPID(t, h, token, "multiproc", 0, 20*time.Second); !ok {
			t.Errorf("multiproc never served alone: %+v", multi)
			return
		}
		time.Sleep(time.Second) // multiproc under load
		status, rep, err = switchTo(h, token, "inproc")
		if err != nil || status != http.StatusOK || rep.Strategy != "inproc" {
			t.Errorf("switch to inproc: %d %+v %v", status, rep, err)
			return
		}
		note("inproc")
		if final, ok = waitPID(t, h, token, "inproc", -1, 20*time.Second); !ok {
			t.Errorf("inproc never served alone: %+v", final)
		}
	})
	r := clRun(t, switchLoad(h, 10*time.Second, "--token", token)...)
	wg.Wait()
	t.Logf("switches: %v", steps)
	wantAllRight(t, "switches", r)
	if len(steps) != 2 {
		t.Fatalf("switched %v, want to multiproc then inproc", steps)
	}
	if final.Strategy != "inproc" || final.PluginPID != 0 {
		t.Errorf("/stats after the switches: strategy %q plugin %d, want inproc and none", final.Strategy, final.PluginPID)
	}
	multiProcs := []int{multi.PluginPID}
	for _, w := range multi.Executor.Workers {
		multiProcs = append(multiProcs, w.PID)
	}
	wantGone(t, "pool", poolProcs)
	wantGone(t, "multiproc", multiProcs)

	// /metrics: the gauges name inproc, and each strategy's answers are
	// in its own series.
	_, metrics, err := hostRequest(h, http.MethodGet, "/metrics", token, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, `wslab_tasks_outstanding{strategy="inproc"}`) {
		t.Errorf("/metrics' gauges do not name inproc")
	}
	for _, s := range []string{"pool", "multiproc", "inproc"} {
		if !strings.Contains(metrics, `strategy="`+s+`"`) || !strings.Contains(metrics, "wslab_tasks_total{") {
			t.Errorf("/metrics has no series of %s", s)
		}
	}
	// The live page's stream names inproc.
	if ev, err := firstLiveEvent(h, token); err != nil || ev.Strategy != "inproc" {
		t.Errorf("live event: %+v %v, want inproc", ev, err)
	}
}

// firstLiveEvent reads the first event of the live page's stream.
func firstLiveEvent(h *hostProc, token string) (host.LiveEvent, error) {
	var ev host.LiveEvent
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.addr+"/live/events", nil)
	if err != nil {
		return ev, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ev, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			return ev, json.Unmarshal([]byte(data), &ev)
		}
	}
	return ev, fmt.Errorf("no event: %v", sc.Err())
}

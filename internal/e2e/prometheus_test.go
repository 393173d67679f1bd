//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// prometheusServer finds Debian's prometheus or skips the test.
func prometheusServer(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	t.Skip("prometheus not found in PATH; install it (apt-get install prometheus; make deps does as root) to run the test against a real Prometheus")
	return ""
}

// promQuery is the value of a PromQL query whose result is one sample,
// and false while Prometheus has none.
func promQuery(t *testing.T, base, query string) (float64, bool) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]json.RawMessage
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" || len(body.Data.Result) != 1 {
		return 0, false
	}
	var s string
	if json.Unmarshal(body.Data.Result[0].Value[1], &s) != nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// promWait waits until query's value satisfies ok, and returns it.
func promWait(t *testing.T, base, query string, limit time.Duration, ok func(float64) bool) float64 {
	t.Helper()
	var last float64
	var have bool
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if last, have = promQuery(t, base, query); have && ok(last) {
			return last
		}
	}
	t.Fatalf("Prometheus: %s = %v (have a sample: %v) after %s", query, last, have, limit)
	return 0
}

// TestPrometheusScrapesTheHost: a real Prometheus scrapes a host under
// load on [server] metrics_listen; what it stored of wslab_tasks_total is
// the replies the clients counted, and a kill of the plugin shows in
// wslab_plugin_restarts_total.
func TestPrometheusScrapesTheHost(t *testing.T) {
	exe := prometheusServer(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	h := startHost(t, "pool", "metrics_listen = "+metricsAddr+"\n")

	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: wslab
    static_configs:
      - targets: ['%s']
`, metricsAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	webAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	clStart(t, "prometheus", exe, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+webAddr, "--log.level=warn")
	base := "http://" + webAddr
	promWait(t, base, `up{job="wslab"}`, 30*time.Second, func(v float64) bool { return v == 1 })

	const conns, each = 4, 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		replies int
	)
	for c := range conns {
		ws := h.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := call(ws, fmt.Sprintf(`{"id":"%d-%d","task":"fib","n":%d}`, c, i, 10+i%5), 10*time.Second); err != nil {
					t.Errorf("connection %d, request %d: %v", c, i, err)
					return
				}
				mu.Lock()
				replies++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if replies != conns*each {
		t.Fatalf("%d replies, want %d", replies, conns*each)
	}
	got := promWait(t, base, `sum(wslab_tasks_total{strategy="pool"})`, 15*time.Second,
		func(v float64) bool { return v >= float64(replies) })
	if got != float64(replies) {
		t.Errorf("Prometheus has wslab_tasks_total = %v, the clients counted %d replies", got, replies)
	}
	if got, _ := promQuery(t, base, `sum(wslab_task_run_seconds_count{strategy="pool",kind="fib"})`); got != float64(replies) {
		t.Errorf("Prometheus has %v run times of fib, want %d", got, replies)
	}

	st := h.stats(t)
	if st.PluginPID == 0 {
		t.Fatal("/stats names no plugin pid")
	}
	if err := syscall.Kill(st.PluginPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	promWait(t, base, `wslab_plugin_restarts_total{strategy="pool"}`, 30*time.Second, func(v float64) bool { return v >= 1 })
	promWait(t, base, `wslab_plugin_up{strategy="pool"}`, 30*time.Second, func(v float64) bool { return v == 1 })
	if r, err := call(h.dial(t), `{"id":"after","task":"fib","n":10}`, 10*time.Second); err != nil || !decode(t, r).OK {
		t.Errorf("after the plugin's restart: %s %v", r, err)
	}
}

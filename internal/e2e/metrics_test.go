//go:build linux

package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClientReadsHostMetrics: bin/client --metrics against a real host and
// a real plugin. The host's count of the requests it answered during the
// run equals the replies the client counted, the connections it opened
// and closed are the client's, and a plugin (pool) or a worker
// (multiproc) SIGKILLed during the run shows as a restart.
func TestClientReadsHostMetrics(t *testing.T) {
	for _, c := range []struct{ strategy, kill string }{{"pool", "plugin"}, {"multiproc", "worker"}} {
		t.Run(c.strategy+"/"+c.kill, func(t *testing.T) {
			h := startHost(t, c.strategy, "[other]\nmultiprocessing_processes = 2\n")
			ctx, cancel := context.WithCancel(context.Background())
			killed := make(chan int, 1)
			go func() { killed <- killOnce(ctx, h, c.kill, time.Second) }()
			r := clRun(t, "--url", h.URL, "--metrics", "http://"+h.addr+"/metrics", "--protocol", "json",
				"--clients", "4", "--pipeline", "4", "--duration", "3s", "--tasks", "noop,cpu,sleep",
				"--n", "cpu=200000", "--n", "sleep=20", "--max-errors", "1000000", "--reply-timeout", "30s")
			cancel()
			pid := <-killed
			if pid == 0 {
				t.Fatalf("found no %s to kill", c.kill)
			}
			m := r.summary
			if m == nil {
				t.Fatalf("no --json summary (exit %d)", r.code)
			}
			host, ok := m["host"].(map[string]any)
			if !ok {
				t.Fatalf("the summary has no host view: %v", m["host"])
			}
			if e, ok := host["error"]; ok {
				t.Fatalf("the host's metrics were not read: %v", e)
			}
			for _, k := range []string{"wrong", "missing", "unsent"} {
				if n := num(t, m, k); n != 0 {
					t.Errorf("%s = %v, want 0", k, n)
				}
			}
			replies := num(t, m, "replies")
			if got := num(t, m, "host", "tasks_total"); got != replies || replies == 0 {
				t.Errorf("the host answered %v requests, the client counted %v replies", got, replies)
			}
			if got := num(t, m, "host", "outcomes", "ok"); got != num(t, m, "ok") {
				t.Errorf("the host answered %v with a result, the client counted %v right", got, num(t, m, "ok"))
			}
			if got := num(t, m, "host", "run", "all", "count"); got != num(t, m, "ok") {
				t.Errorf("the host's run histogram counts %v tasks, the client %v right results", got, num(t, m, "ok"))
			}
			if num(t, m, "host", "connections_opened") != 4 || num(t, m, "host", "connections_closed", "client") != 4 {
				t.Errorf("connections: %v", host)
			}
			switch c.kill {
			case "plugin":
				st := h.stats(t)
				if got := num(t, m, "host", "plugin_restarts"); got != 1 || st.PluginRestarts != 1 {
					t.Errorf("plugin killed once: %v restarts in the host's metrics, %d in /stats", got, st.PluginRestarts)
				}
				if !strings.Contains(r.stdout, "restarts     plugin 1,") {
					t.Errorf("the report does not show the plugin's restart:\n%s", r.stdout)
				}
			case "worker":
				if got := num(t, m, "host", "worker_restarts"); got < 1 {
					t.Errorf("a worker killed: %v worker restarts in the host's metrics", got)
				}
				if got := num(t, m, "host", "plugin_restarts"); got != 0 {
					t.Errorf("only a worker killed: %v plugin restarts", got)
				}
			}
		})
	}
}

// killOnce waits after, then SIGKILLs the host's plugin or one of its
// workers (what is "plugin" or "worker") as soon as /stats names one, and
// returns its PID; 0 when none was found by the time ctx ended.
func killOnce(ctx context.Context, h *hostProc, what string, after time.Duration) int {
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(after):
	}
	const tries = 100 // every 20 ms: 2 s
	for range tries {
		if st, ok := statsOf(h); ok {
			pid := st.PluginPID
			if what == "worker" {
				pid = 0
				if len(st.Executor.Workers) > 0 {
					pid = st.Executor.Workers[0].PID
				}
			}
			if pid > 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
				return pid
			}
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0
}

// TestLabReadsHostMetrics: the lab reads every wslab host's /metrics
// around each measured run (a contender's not: it serves none), and
// report.json and report.md carry what the hosts counted, which agrees
// with the client.
func TestLabReadsHostMetrics(t *testing.T) {
	ini := tinyLab + "external = contender: " + filepath.Join(binDir, "contender") + " --port {port}\n"
	code, r, md := runLab(t, binDir, ini, "--strategies", "inproc,pool", "--scenarios", "mixed,noop", "--rounds", "1")
	if code != 0 {
		t.Fatalf("lab exited %d", code)
	}
	if len(r.Results) != 6 {
		t.Fatalf("%d results, want 3 strategies × 2 scenarios", len(r.Results))
	}
	for _, res := range r.Results {
		name := res.Strategy + "/" + res.Scenario
		if len(res.Trials) != 1 || res.Trials[0].Summary == nil {
			t.Errorf("%s: no measured trial", name)
			continue
		}
		s := res.Trials[0].Summary
		if res.Strategy == "contender" {
			if s.Host != nil || res.Host != nil {
				t.Errorf("%s: a host view of an outside server: %+v", name, s.Host)
			}
			continue
		}
		v := s.Host
		if v == nil || v.Error != "" || res.Host == nil || res.Host.Rounds != 1 {
			t.Errorf("%s: host view %+v, result %+v", name, v, res.Host)
			continue
		}
		if v.TasksTotal != s.Replies || v.Outcomes["ok"] != s.OK || res.Host.Unmatched != 0 || v.Strategy != res.Strategy {
			t.Errorf("%s: the host (%s) answered %d (%v), the client counted %d replies, %d right", name, v.Strategy, v.TasksTotal, v.Outcomes, s.Replies, s.OK)
		}
		if v.Closed["client"] != int64(s.Connections) || v.Run["all"].Count != s.OK {
			t.Errorf("%s: closed %v for %d connections; %d run times for %d right results", name, v.Closed, s.Connections, v.Run["all"].Count, s.OK)
		}
		if (res.Strategy == "pool") != (v.PluginRestarts != nil) || v.PluginRestarts != nil && *v.PluginRestarts != 0 {
			t.Errorf("%s: plugin restarts %v", name, v.PluginRestarts)
		}
	}
	if n := strings.Count(md, "What the host counted itself"); n != 2 {
		t.Errorf("report.md has %d host tables, want one per scenario", n)
	}
	if !strings.Contains(md, "| contender | an outside server: no /metrics |") {
		t.Error("report.md does not say the contender serves no metrics")
	}
}

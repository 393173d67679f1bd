//go:build linux

package e2e

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wslab/wslab/host"
	"github.com/wslab/wslab/internal/supervise"
)

// TestChaos: many pipelined connections for a bounded time while the
// plugin and its workers are SIGKILLed at intervals. At the end every
// request sent has exactly one reply, no result is wrong, no reply carries
// an unknown id (the client counts those as wrong), the host is healthy,
// and no process it started survives it. The figures go to the log.
func TestChaos(t *testing.T) {
	for _, s := range withPython() {
		t.Run(s, func(t *testing.T) {
			skipMissingPython(t, s)
			h := startHost(t, s, "[other]\nmultiprocessing_processes = 2\n")
			ctx, cancel := context.WithCancel(context.Background())
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				seen   []int // every process the host started, for the orphan check
				kills  = map[string]int{}
				during = 6 * time.Second // two plugin kills and several worker kills at chaosKiller's pace
			)
			note := func(pids ...int) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range pids {
					if p > 0 && !slices.Contains(seen, p) {
						seen = append(seen, p)
					}
				}
			}
			if s != "inproc" { // inproc has no process to kill: its run is the load alone
				wg.Go(func() { chaosKiller(ctx, t, h, note, kills, &mu) })
			}
			r := clRun(t, "--url", h.URL, "--protocol", "json", "--clients", "8", "--pipeline", "16",
				"--duration", during.String(), "--tasks", "noop,fib,cpu,sleep,io",
				"--n", "fib=2000", "--n", "cpu=200000", "--n", "sleep=20", "--n", "io=10000",
				"--max-errors", "1000000", "--reply-timeout", "60s")
			cancel()
			wg.Wait()
			mu.Lock()
			t.Logf("%s chaos: %v sent, %v right, %v errors by code %v, %v wrong, %v missing, %v unsent; kills %v",
				s, num(t, r.summary, "sent"), num(t, r.summary, "ok"), sumErrors(r.summary), r.summary["errors"],
				num(t, r.summary, "wrong"), num(t, r.summary, "missing"), num(t, r.summary, "unsent"), kills)
			mu.Unlock()
			for _, k := range []string{"wrong", "missing", "unsent", "connection_failures"} {
				if n := num(t, r.summary, k); n != 0 {
					t.Errorf("%s: %s = %v, want 0", s, k, n)
				}
			}
			if num(t, r.summary, "sent") != num(t, r.summary, "replies") {
				t.Errorf("%s: %v sent, %v replies", s, num(t, r.summary, "sent"), num(t, r.summary, "replies"))
			}
			if num(t, r.summary, "ok") == 0 {
				t.Errorf("%s: nothing succeeded", s)
			}
			if !h.waitHealthy(20 * time.Second) {
				t.Fatalf("%s: host not healthy after the chaos", s)
			}
			st := h.stats(t)
			note(st.PluginPID)
			for _, w := range st.Executor.Workers {
				note(w.PID)
			}
			note(descendantsOf(h.PID())...)
			if code := h.Stop(15 * time.Second); code != 0 {
				t.Errorf("%s: host exited %d after the chaos", s, code)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range seen {
				if !supervise.WaitGone(p, 5*time.Second) {
					syscall.Kill(p, syscall.SIGKILL)
					t.Errorf("%s: process %d outlived the host", s, p)
				}
			}
		})
	}
}

// chaosKiller SIGKILLs a worker every 700 ms and the plugin every 2.5 s
// until ctx ends, noting every process it sees.
func chaosKiller(ctx context.Context, t *testing.T, h *hostProc, note func(...int), kills map[string]int, mu *sync.Mutex) {
	worker := time.NewTicker(700 * time.Millisecond)
	defer worker.Stop()
	plugin := time.NewTicker(2500 * time.Millisecond)
	defer plugin.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-worker.C:
			st, ok := statsOf(h)
			if !ok || len(st.Executor.Workers) == 0 {
				continue
			}
			w := st.Executor.Workers[rand.IntN(len(st.Executor.Workers))]
			note(w.PID)
			if w.PID > 0 && syscall.Kill(w.PID, syscall.SIGKILL) == nil {
				mu.Lock()
				kills["worker"]++
				mu.Unlock()
			}
		case <-plugin.C:
			st, ok := statsOf(h)
			if !ok || st.PluginPID == 0 {
				continue
			}
			note(st.PluginPID)
			note(descendantsOf(st.PluginPID)...)
			if syscall.Kill(st.PluginPID, syscall.SIGKILL) == nil {
				mu.Lock()
				kills["plugin"]++
				mu.Unlock()
			}
		}
	}
}

// statsOf reads /stats without failing the test: the host may be between
// plugins.
func statsOf(h *hostProc) (st host.HostStats, ok bool) {
	return st, h.Stats(&st) == nil
}

func sumErrors(m map[string]any) float64 {
	var n float64
	if e, ok := m["errors"].(map[string]any); ok {
		for _, v := range e {
			f, _ := v.(float64)
			n += f
		}
	}
	return n
}

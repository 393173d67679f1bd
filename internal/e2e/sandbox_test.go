//go:build linux

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/wslab/wslab/internal/sandbox"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// TestMultiprocStrict: workers confined by [multiproc] sandbox = strict
// run every task kind right, /stats says what confines them, and the
// kernel says so of each worker process.
func TestMultiprocStrict(t *testing.T) {
	if missing := sandbox.Check(); len(missing) > 0 {
		t.Skipf("this kernel lacks what strict needs: %v", missing)
	}
	h := startHost(t, "multiproc", "[other]\nmultiprocessing_processes = 2\n[multiproc]\nsandbox = strict\nworker_memory_mb = 256\n")
	workers := workerStats(t, h, 2)
	ws := h.dial(t)
	runner := tasks.Runner{DataDir: t.TempDir(), LargeFileName: "large_file.txt"}
	all := []taskproto.Task{
		{Kind: "fib", N: 300}, {Kind: "cpu", N: 100000}, {Kind: "io", N: 65536}, {Kind: "sleep", N: 20}, {Kind: "noop"},
	}
	for i, task := range all {
		sendJSON(t, ws, fmt.Sprintf(`{"id":"t%d","task":"%s","n":%d}`, i, task.Kind, task.N))
	}
	got := collect(t, ws, len(all))
	for i, task := range all {
		want, err := runner.Run(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		if r := got[fmt.Sprintf("t%d", i)]; !r.OK || r.Result == nil || *r.Result != want {
			t.Errorf("%s %d under strict: %+v %+v, want %q", task.Kind, task.N, r, r.Error, want)
		}
	}
	for _, w := range workers {
		if !strings.Contains(w.Sandbox, "mode=strict") || !strings.Contains(w.Sandbox, "seccomp=true") || strings.Contains(w.Sandbox, "landlock_abi=0") {
			t.Errorf("/stats says worker %s runs under %q", w.ID, w.Sandbox)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.PID))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2", "CapEff:\t0000000000000000"} {
			if !strings.Contains(string(status), want) {
				t.Errorf("worker %s (pid %d): no %q in its status", w.ID, w.PID, want)
			}
		}
	}
	t.Logf("workers run under: %s", workers[0].Sandbox)
}

//go:build linux

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/host"
	"github.com/wslab/wslab/internal/faults"
	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto"
)

// workerStats waits until the multiproc plugin reports n workers, all up,
// and returns them.
func workerStats(t *testing.T, h *hostProc, n int) []taskproto.WorkerStats {
	t.Helper()
	var st host.HostStats
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st = h.stats(t)
		up := 0
		for _, w := range st.Executor.Workers {
			if w.State != "restarting" && supervise.Alive(w.PID) {
				up++
			}
		}
		if up == n && len(st.Executor.Workers) == n {
			return st.Executor.Workers
		}
	}
	t.Fatalf("workers never all up: %+v", st.Executor.Workers)
	return nil
}

// sendJSON writes frames without waiting for replies.
func sendJSON(t *testing.T, ws *websocket.Conn, frames ...string) {
	t.Helper()
	for _, f := range frames {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
}

// collect reads n replies and returns them by id, failing on a duplicate
// or an extra reply; ws is unusable afterwards.
func collect(t *testing.T, ws *websocket.Conn, n int) map[string]reply {
	t.Helper()
	got := map[string]reply{}
	for range n {
		msg, err := read(ws, 30*time.Second)
		if err != nil {
			t.Fatalf("after %d replies: %v", len(got), err)
		}
		r := decode(t, msg)
		id, _ := strconv.Unquote(string(r.ID))
		if _, dup := got[id]; dup {
			t.Fatalf("second reply for %s: %s", id, msg)
		}
		got[id] = r
	}
	// Nothing more may arrive. The read's timeout ends the connection.
	if msg, err := read(ws, 300*time.Millisecond); err == nil {
		t.Fatalf("extra reply %s", msg)
	}
	return got
}

// TestMultiprocWorkerKilled: SIGKILL a worker in the middle of long tasks
// under pipelined load. Its tasks are retried on another worker, every
// request gets exactly one (right) reply, and the pool returns to N workers.
func TestMultiprocWorkerKilled(t *testing.T) {
	h := startHost(t, "multiproc", "[other]\nmultiprocessing_processes = 2\n[multiproc]\nworker_inflight = 4\n")
	before := workerStats(t, h, 2)
	ws := h.dial(t)
	const n = 12
	for i := range n {
		sendJSON(t, ws, fmt.Sprintf(`{"id":"s%d","task":"sleep","n":700}`, i))
	}
	time.Sleep(200 * time.Millisecond) // the first eight are running, four per worker
	victim := before[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got := collect(t, ws, n)
	for i := range n {
		r := got[fmt.Sprintf("s%d", i)]
		if !r.OK || r.Result == nil || *r.Result != "Request done" {
			t.Errorf("s%d: %+v (error %+v); a killed worker's task is retried once", i, r, r.Error)
		}
	}
	after := workerStats(t, h, 2)
	if after[0].PID == victim.PID || after[0].Restarts != 1 {
		t.Errorf("killed worker %s: pid %d → %d, restarts %d; want a new process and 1 restart", victim.ID, victim.PID, after[0].PID, after[0].Restarts)
	}
	if after[1].PID != before[1].PID || after[1].Restarts != 0 {
		t.Errorf("the other worker changed: %+v → %+v", before[1], after[1])
	}
	if st := h.stats(t); st.Executor.Restarts != 1 {
		t.Errorf("stats count %d restarts, want 1", st.Executor.Restarts)
	}
}

// faultHost starts a multiproc host with one task made to fail in workers.
func faultHost(t *testing.T, fault, ini string) *hostProc {
	return startHostEnv(t, "multiproc", "plugin_dir = "+faultyPlugins()+"\n[other]\nmultiprocessing_processes = 2\n"+ini,
		[]string{faults.Env + "=" + fault})
}

// TestMultiprocPanicKillsOnlyItsWorker: a task that panics kills its
// worker (and, retried, the next one it lands on); the task gets
// executor_failed, and a task running on the other worker is untouched.
func TestMultiprocPanicKillsOnlyItsWorker(t *testing.T) {
	h := faultHost(t, "panic:fib:13", "")
	before := workerStats(t, h, 2)
	ws := h.dial(t)
	sendJSON(t, ws, `{"id":"long","task":"sleep","n":1500}`)
	time.Sleep(100 * time.Millisecond)
	sendJSON(t, ws, `{"id":"boom","task":"fib","n":13}`)
	got := collect(t, ws, 2)
	if r := got["long"]; !r.OK {
		t.Errorf("the task on the other worker was touched: %+v %+v", r, r.Error)
	}
	if r := got["boom"]; r.code() != "executor_failed" {
		t.Errorf("panicking task: %+v %+v, want executor_failed", r, r.Error)
	}
	after := workerStats(t, h, 2)
	var restarts int64
	for i, w := range after {
		restarts += w.Restarts
		if w.ID == got["long"].Worker && (w.PID != before[i].PID || w.Restarts != 0) {
			t.Errorf("the worker that ran the long task was replaced: %+v → %+v", before[i], w)
		}
	}
	if restarts == 0 {
		t.Error("no worker restarted after the panic")
	}
	// collect's last read timed out, which ends a gorilla connection.
	if r, err := call(h.dial(t), `{"id":"ok","task":"fib","n":14}`, 10*time.Second); err != nil || !decode(t, r).OK {
		t.Errorf("after the panic: %s %v", r, err)
	}
}

// TestMultiprocMemoryLimit: with worker_memory_mb, a runaway task kills
// only its own worker, and gets resource_exhausted rather than a retry.
func TestMultiprocMemoryLimit(t *testing.T) {
	h := faultHost(t, "hog:cpu:7", "[multiproc]\nworker_memory_mb = 64\n")
	workerStats(t, h, 2)
	ws := h.dial(t)
	sendJSON(t, ws, `{"id":"long","task":"sleep","n":1500}`)
	time.Sleep(100 * time.Millisecond)
	sendJSON(t, ws, `{"id":"hog","task":"cpu","n":7}`)
	got := collect(t, ws, 2)
	if r := got["long"]; !r.OK {
		t.Errorf("the task on the other worker was touched: %+v %+v", r, r.Error)
	}
	if r := got["hog"]; r.code() != "resource_exhausted" || !strings.Contains(r.Error.Message, "worker_memory_mb") {
		t.Errorf("runaway task: %+v %+v, want resource_exhausted naming worker_memory_mb", r, r.Error)
	}
	workerStats(t, h, 2)
}

//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDistributedWorkerKilled: SIGKILL a local worker in the middle of a
// task; JetStream redelivers the task to another worker, every request gets
// exactly one (right) reply, and the worker is restarted.
func TestDistributedWorkerKilled(t *testing.T) {
	// timeout_sec 40 makes the consumer's AckWait 2 s: the dead worker's task
	// comes back that soon.
	h := startHost(t, "distributed", "timeout_sec = 40\n[distributed]\nworkers = 2\n")
	ws := h.dial(t)
	const n = 4
	for i := range n {
		sendJSON(t, ws, fmt.Sprintf(`{"id":"s%d","task":"sleep","n":1000}`, i))
	}
	time.Sleep(400 * time.Millisecond) // two sleeps are running, one per worker
	workers := h.stats(t).Executor.Workers
	if len(workers) != 2 {
		t.Fatalf("workers %+v, want 2", workers)
	}
	if err := syscall.Kill(workers[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got := collect(t, ws, n)
	for i := range n {
		r := got[fmt.Sprintf("s%d", i)]
		if !r.OK || r.Result == nil || *r.Result != "Request done" {
			t.Errorf("s%d: %+v %+v; the killed worker's task must be redelivered", i, r, r.Error)
		}
	}
	var restarts int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && restarts == 0; time.Sleep(50 * time.Millisecond) {
		restarts = h.stats(t).Executor.Restarts
	}
	if restarts != 1 {
		t.Errorf("restarts %d, want 1", restarts)
	}
	// The dispatcher's own metrics, on the host's /metrics.
	if got := h.metric(t, "wslab_distributed_redeliveries_total", nil); got < 1 {
		t.Errorf("wslab_distributed_redeliveries_total = %v after a worker died holding a task, want ≥ 1", got)
	}
	if got := h.metric(t, "wslab_distributed_tasks_outstanding", nil); got != 0 {
		t.Errorf("wslab_distributed_tasks_outstanding = %v with every task answered", got)
	}
	if got := h.metric(t, "wslab_worker_restarts_total", nil); got != 1 {
		t.Errorf("wslab_worker_restarts_total = %v, want 1", got)
	}
}

// TestDistributedWorkerJoins: a worker started by hand from the command
// line joins the host's NATS server and runs its tasks.
func TestDistributedWorkerJoins(t *testing.T) {
	port := freePort(t)
	const token = "join-s3cret"
	h := startHost(t, "distributed", fmt.Sprintf("[distributed]\nworkers = 0\nlisten = 127.0.0.1:%d\ntoken = %s\n", port, token))

	worker := startJoiningWorker(t, port, token)

	ws := h.dial(t)
	msg, err := call(ws, `{"id":1,"task":"fib","n":90}`, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, msg)
	if !r.OK || *r.Result != "2880067194370816120" {
		t.Fatalf("reply %s", msg)
	}
	if want := ":" + strconv.Itoa(worker.Process.Pid); !strings.HasSuffix(r.Worker, want) {
		t.Errorf("worker %q, want the joined worker (…%s)", r.Worker, want)
	}
}

// startJoiningWorker starts `distributed worker` by hand against the
// embedded server on port, as an operator would, and stops it by its PID
// when the test ends.
func startJoiningWorker(t *testing.T, port int, token string) *exec.Cmd {
	t.Helper()
	var stderr bytes.Buffer
	worker := exec.Command(filepath.Join(binDir, "plugins", "distributed"), "worker",
		"--nats", fmt.Sprintf("nats://127.0.0.1:%d", port), "--token", token, "--concurrency", "2")
	worker.Stderr = &stderr
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		worker.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { worker.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			worker.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("worker stderr:\n%s", stderr.String())
		}
	})
	return worker
}

// TestDistributedLateWorkerSkipsCancelled: tasks cancelled while no worker
// listens (the client went away before any worker had started) are not run
// by the worker that comes later: a dispatcher sends a worker that says it
// is ready the cancels it missed. Otherwise the next noop would wait behind
// ten rounds of 5 s sleeps.
func TestDistributedLateWorkerSkipsCancelled(t *testing.T) {
	port := freePort(t)
	const token = "late-s3cret"
	h := startHost(t, "distributed", fmt.Sprintf("[distributed]\nworkers = 0\nlisten = 127.0.0.1:%d\ntoken = %s\n", port, token))
	gone := h.dial(t)
	for i := range 20 {
		sendJSON(t, gone, fmt.Sprintf(`{"id":%d,"task":"sleep","n":5000}`, i))
	}
	waitFor(t, "the sleeps to reach the strategy", func() bool { return h.stats(t).Executor.Queued+h.stats(t).Executor.Running == 20 })
	gone.Close()
	waitFor(t, "the sleeps to be abandoned", func() bool { return h.stats(t).Outstanding == 0 })

	startJoiningWorker(t, port, token)
	ws := h.dial(t)
	start := time.Now()
	msg, err := call(ws, `{"id":"after","task":"noop"}`, 60*time.Second)
	if err != nil || !decode(t, msg).OK {
		t.Fatalf("noop: %s %v", msg, err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("the noop took %v: the worker ran sleeps cancelled before it started", took)
	}
}

// TestDistributedNATSUnreachable: a nats_url nobody answers stops the host
// before it serves, with a line that says so.
func TestDistributedNATSUnreachable(t *testing.T) {
	port := freePort(t) // closed again: nothing listens there
	conf := filepath.Join(t.TempDir(), "config.ini")
	ini := fmt.Sprintf("[server]\nhost = 127.0.0.1\nport = %d\n[distributed]\nnats_url = nats://127.0.0.1:%d\n", freePort(t), port)
	if err := os.WriteFile(conf, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "host"), "--config", conf, "--plugin", "distributed").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("host: %v, want exit 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "connect to NATS") {
		t.Errorf("output does not say NATS is unreachable:\n%s", out)
	}
}

//go:build linux

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestDistributedNATSOutage: NATS goes away under a running task. The task
// fails with executor_failed once lost_after_sec passes, new tasks are
// refused while NATS is down, and everything works again once it is back.
func TestDistributedNATSOutage(t *testing.T) {
	exe := clNATSServer(t)
	port := freePort(t)
	const token = "outage-s3cret"
	store := filepath.Join(t.TempDir(), "store")
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", store, "--auth", token}
	nats := clStart(t, "nats", exe, args...)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	outWaitJetStream(t, url, token)

	h := startHost(t, "distributed", fmt.Sprintf(
		"timeout_sec = 40\n[distributed]\nnats_url = %s\ntoken = %s\nworkers = 1\nlost_after_sec = 2\n", url, token))
	ws := h.dial(t)
	if msg, err := call(ws, `{"task":"noop"}`, 10*time.Second); err != nil || !decode(t, msg).OK {
		t.Fatalf("noop before the outage: %s %v", msg, err)
	}

	sendJSON(t, ws, `{"id":"long","task":"sleep","n":20000}`)
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(nats.pid(), syscall.SIGKILL)
	<-nats.exited

	start := time.Now()
	msg, err := read(ws, 15*time.Second)
	if err != nil {
		t.Fatalf("no reply for the task in flight: %v", err)
	}
	if r := decode(t, msg); string(r.ID) != `"long"` || r.code() != "executor_failed" {
		t.Errorf("task in flight during the outage: %s, want executor_failed", msg)
	}
	t.Logf("in-flight task failed after %v", time.Since(start))

	begin := time.Now()
	msg, err = call(ws, `{"id":"new","task":"noop"}`, 5*time.Second)
	if err != nil || decode(t, msg).code() != "executor_failed" {
		t.Errorf("task sent while NATS is down: %s %v, want executor_failed", msg, err)
	} else if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("refusal took %v", d)
	}

	clStart(t, "nats-again", exe, args...)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		msg, err = call(ws, `{"id":"back","task":"fib","n":90}`, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r := decode(t, msg); r.OK && *r.Result == "2880067194370816120" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not working again 30 s after NATS came back: %s", msg)
		}
	}
}

// outWaitJetStream waits until a single server's JetStream answers.
func outWaitJetStream(t *testing.T, url, token string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		nc, err := natsgo.Connect(url, natsgo.Token(token))
		if err != nil {
			continue
		}
		js, err := jetstream.New(nc)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
		}
		nc.Close()
		if err == nil {
			return
		}
	}
	t.Fatal("JetStream not ready in 20 s")
}

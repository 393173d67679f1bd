//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/attackrecord"
	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/internal/testnet"
)

// buildTest builds the test binary of package pkg (a path from the
// checkout's root) at out.
func buildTest(t *testing.T, out, pkg string) {
	t.Helper()
	build := exec.Command("go", "build", "-o", out, pkg)
	build.Dir = "../.."
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
}

// attackTargets are the file outside the data directory and the listener
// the attacks aim at, and the environment that names them to the attacks.
func attackTargets(t *testing.T) (outside string, ln *testnet.CountingListener, env []string) {
	t.Helper()
	outside = filepath.Join(t.TempDir(), "outside.txt")
	if err := os.WriteFile(outside, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln = testnet.Listen(t)
	return outside, ln, []string{attacks.Env + "=" + outside + "," + ln.Addr().String()}
}

// attackUnconfined runs, one at a time, the attacks of a rung that
// confines nothing (every one but the allocation, which would take the
// memory of the machine the test runs on: the rung has no memory cap) and
// asserts the honest outcomes: the file, network and process attacks
// succeed, the file outside is overwritten, the listener sees exactly one
// connection, and the spin gets a timeout reply, while a request on
// another connection is answered during each attack and one on the
// attack's connection after it. What the attacks got is recorded for the
// lab's ladder under rung. after, when not nil, is called once each
// attack and the request after it are answered.
func attackUnconfined(t *testing.T, h *hostProc, rung, outside string, ln *testnet.CountingListener, after func(n int64)) {
	t.Helper()
	bystander := h.dial(t)
	var seen []attackrecord.Outcome
	for _, n := range []int64{attacks.ReadPasswd, attacks.ReadOutside, attacks.WriteOutside, attacks.Connect, attacks.Fork, attacks.Spin} {
		name := attacks.Names[n]
		ws := h.dial(t)
		sendJSON(t, ws, fmt.Sprintf(`{"id":%d,"task":"fib","n":%d}`, n, n))
		// Another request, on another connection, while the attack runs.
		if r, err := call(bystander, `{"id":"beside","task":"fib","n":90}`, 10*time.Second); err != nil ||
			!decode(t, r).OK || *decode(t, r).Result != "2880067194370816120" {
			t.Fatalf("fib 90 beside %s on %s: %s %v", name, rung, r, err)
		}
		start := time.Now()
		r, err := read(ws, 20*time.Second)
		if err != nil {
			t.Fatalf("%s on %s: no reply: %v", name, rung, err)
		}
		seen = append(seen, outcomeOf(n, decode(t, r)))
		t.Logf("%-34s on %s %5dms: %s", name, rung, time.Since(start).Milliseconds(), r)
		if r, err := call(ws, `{"id":"after","task":"fib","n":20}`, 10*time.Second); err != nil || !decode(t, r).OK {
			t.Fatalf("after %s on %s: %s %v", name, rung, r, err)
		}
		if after != nil {
			after(n)
		}
	}
	seen = withEffects(seen, outside, "original", ln.Accepted())
	recordAttacks(t, rung, seen)
	for _, o := range seen {
		want := ""
		if o.N == attacks.Spin {
			want = "timeout"
		}
		if o.Code != want {
			t.Errorf("%s on %s: %q (%s), want %q", o.Attack, rung, o.Code, o.Message, want)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "attacked" {
		t.Errorf("on %s the file outside holds %q: the write did not happen", rung, b)
	}
	if n := ln.Accepted(); n != 1 {
		t.Errorf("on %s the listener accepted %d connections, want 1", rung, n)
	}
}

// TestAttacksOnInproc runs the attacks on the inproc rung: inside the
// host's own process, by a host built with its inproc strategy wrapped in
// internal/attacks (faultyhost, host.MainWrapped). Nothing confines a
// goroutine of the host: the file, network and process attacks succeed,
// the honest bottom row of the ladder. The host answers the spin with a
// timeout at its deadline, but nothing can stop a goroutine deaf to its
// context: the spin (bounded by internal/attacks at an hour) keeps one of
// the host's Ps, and a core, busy until the host exits when the test ends
// (the spin is the last attack, and the host has spare Ps, host.spareProcs,
// so the requests beside and after it are answered). The allocation is not
// run (no memory cap), as on pool.
func TestAttacksOnInproc(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "host")
	buildTest(t, bin, "./internal/e2e/faultyhost")
	outside, ln, env := attackTargets(t)
	h := startHostWith(t, hostproc.Options{
		Command: []string{bin, "--config", writeConfig(t, "timeout_sec = 2\n"), "--plugin=inproc", "--log-level", "debug"},
		Env:     env,
	})
	if s := h.stats(t).Strategy; s != "inproc" {
		t.Fatalf("the attacking host serves %q, want inproc", s)
	}
	attackUnconfined(t, h, "inproc", outside, ln, nil)
}

// TestAttacksOnDistributed runs the attacks on the distributed rung: in
// the local worker processes that the NATS work queue (embedded NATS)
// feeds, by a distributed plugin whose workers' tasks are wrapped in
// internal/attacks (faultydistributed, distributed.Main). A worker
// is a plain process: the file, network and process attacks succeed. The
// host answers the spin with a timeout at its deadline; the worker that
// runs it exits OverrunGrace later (its watchdog) and is replaced, so no
// spin outlives its worker. The allocation is not run: a worker has no
// memory cap.
func TestAttacksOnDistributed(t *testing.T) {
	plugins := filepath.Join(t.TempDir(), "plugins")
	buildTest(t, filepath.Join(plugins, "distributed"), "./internal/e2e/faultydistributed")
	outside, ln, env := attackTargets(t)
	h := startHostEnv(t, "distributed", "plugin_dir = "+plugins+"\ntimeout_sec = 2\n[distributed]\nworkers = 2\n", env)
	workers := workerStats(t, h, 2)
	restarts := func() (n int64) {
		for _, w := range h.stats(t).Executor.Workers {
			n += w.Restarts
		}
		return n
	}
	before := restarts()
	attackUnconfined(t, h, "distributed", outside, ln, func(n int64) {
		if n != attacks.Spin {
			return
		}
		// The spin's worker goes at its deadline plus OverrunGrace, and
		// its supervisor starts another.
		deadline := time.Now().Add(15 * time.Second)
		for restarts() == before && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if restarts() == before {
			t.Errorf("no worker was replaced after the spin: %+v", h.stats(t).Executor.Workers)
		}
		workerStats(t, h, 2)
	})
	for _, w := range workers {
		if !strings.HasPrefix(w.ID, "l") {
			t.Errorf("worker %q is not a local worker", w.ID)
		}
	}
}

// What make build ships carries none of the attacks: only the test
// binaries (faultyhost, faultypool, faultydistributed, ...) import them.
func TestShippedBinariesCarryNoAttacks(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/...", "./plugins/...")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list names %d dependencies: %s", len(deps), out)
	}
	for _, dep := range deps {
		if dep == "github.com/wslab/wslab/internal/attacks" || strings.HasPrefix(dep, "github.com/wslab/wslab/internal/e2e") {
			t.Errorf("%s is a dependency of what make build ships", dep)
		}
	}
}

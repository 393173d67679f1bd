//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/attackrecord"
	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/internal/sandbox"
	"github.com/wslab/wslab/internal/testnet"
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

// attackRung runs every attack of internal/attacks, one at a time,
// through multiproc workers under mode, and checks what the attacks could
// not touch; it returns each attack's error code ("" when it succeeded).
// What it saw is recorded for the lab's ladder (recordAttacks) under the
// rung's lab name: multiproc, or multiproc-MODE.
func attackRung(t *testing.T, mode string) map[int64]string {
	t.Helper()
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside.txt")
	if err := os.WriteFile(outside, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln := testnet.Listen(t)
	h := startHostEnv(t, "multiproc", "plugin_dir = "+faultyPlugins()+"\ntimeout_sec = 2\n[other]\nmultiprocessing_processes = 2\n"+
		"[multiproc]\nworker_memory_mb = 128\nsandbox = "+mode+"\n",
		[]string{attacks.Env + "=" + outside + "," + ln.Addr().String()})
	workerStats(t, h, 2)
	got := map[int64]string{}
	var seen []attackrecord.Outcome
	for _, n := range []int64{attacks.ReadPasswd, attacks.ReadOutside, attacks.WriteOutside, attacks.Connect, attacks.Fork, attacks.Allocate, attacks.Spin} {
		r, err := call(h.dial(t), fmt.Sprintf(`{"id":%d,"task":"fib","n":%d}`, n, n), 20*time.Second)
		if err != nil {
			t.Fatalf("%s under %s: %v", attacks.Names[n], mode, err)
		}
		rep := decode(t, r)
		got[n] = rep.code()
		seen = append(seen, outcomeOf(n, rep))
		t.Logf("%-34s under %-6s: %s", attacks.Names[n], mode, r)
		workerStats(t, h, 2) // a worker the attack killed is replaced
		if r, err := call(h.dial(t), `{"id":"after","task":"fib","n":20}`, 10*time.Second); err != nil || !decode(t, r).OK {
			t.Fatalf("after %s: %s %v", attacks.Names[n], r, err)
		}
	}
	seen = withEffects(seen, outside, "original", ln.Accepted())
	rung := "multiproc"
	if mode != sandbox.None {
		rung += "-" + mode
	}
	recordAttacks(t, rung, seen)
	if mode != sandbox.None {
		if b, _ := os.ReadFile(outside); string(b) != "original" {
			t.Errorf("under %s the file outside was changed: %q", mode, b)
		}
		if n := ln.Accepted(); n != 0 {
			t.Errorf("under %s the listener accepted %d connections", mode, n)
		}
	}
	return got
}

// TestAttacksOnMultiproc: under strict every attack gets an error reply
// naming what stopped it and touches nothing; under none the file and
// network attacks succeed, the honest row of the ladder. Memory past the
// cap (resource_exhausted, told by the worker's crash report) and a task
// deaf to its deadline lose their worker on either rung, and the worker
// is replaced.
func TestAttacksOnMultiproc(t *testing.T) {
	if missing := sandbox.Check(); len(missing) > 0 {
		t.Skipf("this kernel lacks what strict needs: %v", missing)
	}
	strict := attackRung(t, sandbox.Strict)
	for _, n := range []int64{attacks.ReadPasswd, attacks.ReadOutside, attacks.WriteOutside, attacks.Connect, attacks.Fork} {
		if strict[n] != "sandbox_denied" {
			t.Errorf("%s under strict: %q, want sandbox_denied", attacks.Names[n], strict[n])
		}
	}
	none := attackRung(t, sandbox.None)
	for _, n := range []int64{attacks.ReadPasswd, attacks.ReadOutside, attacks.WriteOutside, attacks.Connect, attacks.Fork} {
		if none[n] != "" {
			t.Errorf("%s under none: %q, want it to succeed", attacks.Names[n], none[n])
		}
	}
	for rung, got := range map[string]map[int64]string{"strict": strict, "none": none} {
		if got[attacks.Allocate] != "resource_exhausted" || got[attacks.Spin] != "timeout" {
			t.Errorf("under %s: allocation %q (want resource_exhausted), spin %q (want timeout)", rung, got[attacks.Allocate], got[attacks.Spin])
		}
	}
}

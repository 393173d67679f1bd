//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/attackrecord"
	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/internal/testnet"
)

// TestAttacksOnPool runs the attacks on the pool rung: tasks run on
// goroutines of the plugin process, which confines nothing, so the file,
// network and process attacks succeed (the honest row of the ladder) and a
// task deaf to its deadline gets a timeout reply while the host and other
// requests carry on. The allocation is not run: pool has no memory cap, and
// the attack would take the memory of the machine the test runs on. What
// the attacks got is recorded for the lab's ladder.
func TestAttacksOnPool(t *testing.T) {
	plugins := filepath.Join(t.TempDir(), "plugins")
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "pool"), "./internal/e2e/faultypool")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the attacking pool plugin: %v\n%s", err, out)
	}
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside.txt")
	if err := os.WriteFile(outside, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln := testnet.Listen(t)
	h := startHostEnv(t, "pool", "plugin_dir = "+plugins+"\ntimeout_sec = 2\n[pool]\nworkers = 2\n",
		[]string{attacks.Env + "=" + outside + "," + ln.Addr().String()})
	var seen []attackrecord.Outcome
	for _, n := range []int64{attacks.ReadPasswd, attacks.ReadOutside, attacks.WriteOutside, attacks.Connect, attacks.Fork, attacks.Spin} {
		r, err := call(h.dial(t), fmt.Sprintf(`{"id":%d,"task":"fib","n":%d}`, n, n), 20*time.Second)
		if err != nil {
			t.Fatalf("%s on pool: %v", attacks.Names[n], err)
		}
		rep := decode(t, r)
		seen = append(seen, outcomeOf(n, rep))
		t.Logf("%-34s on pool: %s", attacks.Names[n], r)
		if r, err := call(h.dial(t), `{"id":"after","task":"fib","n":20}`, 10*time.Second); err != nil || !decode(t, r).OK {
			t.Fatalf("after %s: %s %v", attacks.Names[n], r, err)
		}
	}
	seen = withEffects(seen, outside, "original", ln.Accepted())
	recordAttacks(t, "pool", seen)
	for _, o := range seen {
		want := ""
		if o.N == attacks.Spin {
			want = "timeout"
		}
		if o.Code != want {
			t.Errorf("%s on pool: %q (%s), want %q", o.Attack, o.Code, o.Message, want)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "attacked" {
		t.Errorf("on pool the file outside holds %q: the write did not happen", b)
	}
	if n := ln.Accepted(); n != 1 {
		t.Errorf("on pool the listener accepted %d connections, want 1", n)
	}
}

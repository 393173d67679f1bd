//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/attackrecord"
	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/testnet"
	"github.com/wslab/wslab/internal/wasm"
	"github.com/wslab/wslab/taskproto"
)

// wasmRestarts is the instances the wasm strategy has replaced, once
// every instance is back (none restarting).
func wasmRestarts(t *testing.T, h *hostProc, instances int) int64 {
	t.Helper()
	var restarts int64
	for _, w := range workerStats(t, h, instances) {
		restarts += w.Restarts
	}
	return restarts
}

// TestAttacksOnWasm: the attacks of internal/attacks, run inside the wasm
// guest (the faulty plugin directory's guest, built with -tags wasmtest),
// each get an error reply naming what stopped them: sandbox_denied for the
// file system, the network and processes, which WASI preview 1 simply
// does not give the guest; resource_exhausted for memory past [wasm]
// max_memory_mb; timeout, saying the deadline stopped it, for a loop deaf
// to its context. The file outside is unchanged, the listener sees no
// connection, a request on another connection is answered while each
// attack runs, and an instance an attack ended is replaced.
func TestAttacksOnWasm(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside.txt")
	if err := os.WriteFile(outside, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln := testnet.Listen(t)
	const instances = 2
	// A small cap, reached well within timeout_sec even on a loaded
	// machine: every loop turn of the guest pays a termination check.
	h := startHostEnv(t, "wasm", fmt.Sprintf("plugin_dir = %s\ntimeout_sec = 2\n[wasm]\ninstances = %d\nmax_memory_mb = 24\n",
		faultyPlugins(), instances), []string{attacks.Env + "=" + outside + "," + ln.Addr().String()})
	restarts := wasmRestarts(t, h, instances)
	bystander := h.dial(t)
	var seen []attackrecord.Outcome
	for _, c := range []struct {
		n        int64
		code     taskproto.Code
		says     string // in the message
		replaced bool   // the instance it ran on
	}{
		{attacks.ReadPasswd, taskproto.CodeSandboxDenied, "preopened data directory", false},
		{attacks.ReadOutside, taskproto.CodeSandboxDenied, "preopened data directory", false},
		{attacks.WriteOutside, taskproto.CodeSandboxDenied, "preopened data directory", false},
		{attacks.Connect, taskproto.CodeSandboxDenied, "no call that opens a socket", false},
		{attacks.Fork, taskproto.CodeSandboxDenied, "no call that starts a process", false},
		{attacks.Allocate, taskproto.CodeResourceExhausted, "max_memory_mb", true},
		{attacks.Spin, taskproto.CodeTimeout, "deadline", true},
	} {
		name := attacks.Names[c.n]
		ws := h.dial(t)
		sendJSON(t, ws, fmt.Sprintf(`{"id":%d,"task":"fib","n":%d}`, c.n, c.n))
		// Another request, on another connection, while the attack runs.
		if r, err := call(bystander, `{"id":"beside","task":"fib","n":90}`, 10*time.Second); err != nil ||
			!decode(t, r).OK || *decode(t, r).Result != "2880067194370816120" {
			t.Fatalf("fib 90 beside %s: %s %v", name, r, err)
		}
		start := time.Now()
		r, err := read(ws, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: no reply: %v", name, err)
		}
		rep := decode(t, r)
		seen = append(seen, outcomeOf(c.n, rep))
		t.Logf("%-34s %5dms: %s", name, time.Since(start).Milliseconds(), r)
		if rep.OK || rep.code() != string(c.code) || !strings.Contains(rep.Error.Message, c.says) {
			t.Errorf("%s: %s; want %s saying %q", name, r, c.code, c.says)
		}
		// The host answers a task past its deadline at that deadline; the
		// plugin's, a moment later, stops it and remakes its instance.
		now := wasmRestarts(t, h, instances)
		for deadline := time.Now().Add(10 * time.Second); c.replaced && now == restarts && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			now = wasmRestarts(t, h, instances)
		}
		if replaced := now > restarts; replaced != c.replaced {
			t.Errorf("%s: instances replaced %d → %d, want replaced %v", name, restarts, now, c.replaced)
		}
		restarts = now
		if r, err := call(ws, `{"id":"after","task":"fib","n":20}`, 10*time.Second); err != nil || !decode(t, r).OK {
			t.Fatalf("after %s: %s %v", name, r, err)
		}
	}
	recordAttacks(t, "wasm", withEffects(seen, outside, "original", ln.Accepted()))
	if b, _ := os.ReadFile(outside); string(b) != "original" {
		t.Errorf("the file outside the data directory was changed: %q", b)
	}
	if n := ln.Accepted(); n != 0 {
		t.Errorf("the listener accepted %d connections", n)
	}
}

// TestWasmModuleVerified: with [server] verify_plugins on, the wasm
// module beside the plugin is checked against the manifest as make build
// writes it: a changed module, or another file beside it, and the host
// refuses to start the plugin.
func TestWasmModuleVerified(t *testing.T) {
	dirWith := func(t *testing.T, change func(dir string)) string {
		dir := t.TempDir()
		var manifest strings.Builder
		for _, name := range []string{"wasm", wasm.ModuleDir + "/" + wasm.ModuleFile} {
			data, err := os.ReadFile(filepath.Join(binDir, "plugins", name))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o755); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			fmt.Fprintf(&manifest, "%s  %s\n", hex.EncodeToString(sum[:]), name)
		}
		if err := os.WriteFile(filepath.Join(dir, launch.ChecksumsFile), []byte(manifest.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if change != nil {
			change(dir)
		}
		return dir
	}
	h := startHost(t, "wasm", "verify_plugins = true\nplugin_dir = "+dirWith(t, nil)+"\n")
	if got, err := call(h.dial(t), "fib", 10*time.Second); err != nil || strings.Contains(got, "error") {
		t.Errorf("fib through the verified wasm plugin: %q, %v", got, err)
	}
	module := filepath.Join(wasm.ModuleDir, wasm.ModuleFile)
	for _, c := range []struct {
		name   string
		change func(dir string)
		want   string
	}{
		{"changed", func(dir string) {
			f, err := os.OpenFile(filepath.Join(dir, module), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte{0})
			f.Close()
		}, module + " has SHA-256"},
		{"beside", func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, wasm.ModuleDir, "other.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, filepath.Join(wasm.ModuleDir, "other.wasm") + " is not in the plugin manifest"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := errWriteFile(t, "verify.ini", "[server]\nhost = 127.0.0.1\nport = 0\nverify_plugins = yes\n")
			_, stderr, code := errRunHost(t, "--config", conf, "--plugin", "wasm", "--plugin-dir", dirWith(t, c.change))
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit status %d, stderr:\n%s\nwant a failure saying %q", code, stderr, c.want)
			}
			if strings.Contains(stderr, "plugin ready") {
				t.Errorf("the plugin was started beside a module the manifest does not vouch for:\n%s", stderr)
			}
		})
	}
}

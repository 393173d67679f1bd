//go:build linux

package e2e

import (
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/internal/supervise"
)

// TestPluginKilledUnderLoad SIGKILLs the plugin process while every
// connection has tasks in flight: each request still gets exactly one reply
// (a result or executor_failed), the plugin comes back, and new requests
// succeed.
func TestPluginKilledUnderLoad(t *testing.T) {
	for _, s := range pluginStrategies() {
		t.Run(s, func(t *testing.T) {
			h := startHost(t, s, "[other]\nasyn_semaphore = 8\nmultiprocessing_processes = 2\n[pool]\nworkers = 8\n[multiproc]\nworker_inflight = 8\n")
			before := h.stats(t)
			if before.PluginPID == 0 {
				t.Fatal("stats report no plugin pid")
			}
			workers := descendantsOf(before.PluginPID)
			const conns, perConn = 10, 6
			var wg sync.WaitGroup
			type outcome struct {
				replies map[string]int
				codes   map[string]int
				err     error
			}
			outcomes := make([]outcome, conns)
			for c := range conns {
				ws := h.dial(t)
				for i := range perConn {
					task := `"task":"sleep","n":1500`
					if i%2 == 1 {
						task = `"task":"cpu","n":1000`
					}
					frame := fmt.Sprintf(`{"id":"c%d-%d",%s}`, c, i, task)
					if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
						t.Fatal(err)
					}
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					o := outcome{replies: map[string]int{}, codes: map[string]int{}}
					defer func() { outcomes[c] = o }()
					for range perConn {
						msg, err := read(ws, 20*time.Second)
						if err != nil {
							o.err = err
							return
						}
						r := decode(t, msg)
						id, _ := strconv.Unquote(string(r.ID))
						o.replies[id]++
						o.codes[r.code()]++
					}
					// Nothing more may arrive: one reply per request.
					if msg, err := read(ws, 500*time.Millisecond); err == nil {
						o.err = fmt.Errorf("extra reply %s", msg)
					}
				}()
			}
			time.Sleep(400 * time.Millisecond) // the sleeps are now running in the plugin
			if err := syscall.Kill(before.PluginPID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			wg.Wait()

			failed := 0
			for c, o := range outcomes {
				if o.err != nil {
					t.Errorf("connection %d: %v", c, o.err)
				}
				for i := range perConn {
					if n := o.replies[fmt.Sprintf("c%d-%d", c, i)]; n != 1 {
						t.Errorf("request c%d-%d got %d replies, want 1", c, i, n)
					}
				}
				for code, n := range o.codes {
					switch code {
					case "":
					case "executor_failed":
						failed += n
					default:
						t.Errorf("connection %d: %d replies with code %q", c, n, code)
					}
				}
			}
			if failed == 0 {
				t.Error("no request failed with executor_failed although the plugin died under them")
			}

			if !h.waitHealthy(20 * time.Second) {
				t.Fatal("plugin did not come back")
			}
			after := h.stats(t)
			if after.PluginRestarts < 1 || after.PluginPID == before.PluginPID || after.PluginPID == 0 {
				t.Errorf("after the kill: restarts %d, pid %d (was %d)", after.PluginRestarts, after.PluginPID, before.PluginPID)
			}
			// The plugin's restart is counted once, as the host's; the new
			// plugin's own workers have not restarted.
			if after.Executor.Restarts != 0 {
				t.Errorf("after the kill the executor counts %d restarts of its own, want 0 (the plugin's are plugin_restarts)", after.Executor.Restarts)
			}
			if !supervise.WaitGone(before.PluginPID, 5*time.Second) {
				t.Errorf("killed plugin %d still alive", before.PluginPID)
			}
			for _, pid := range workers {
				if !supervise.WaitGone(pid, 5*time.Second) {
					t.Errorf("worker %d of the killed plugin still alive", pid)
				}
			}
			ws := h.dial(t)
			msg, err := call(ws, `{"id":1,"task":"fib","n":90}`, 10*time.Second)
			if err != nil || !decode(t, msg).OK {
				t.Fatalf("request after restart: %s %v", msg, err)
			}
		})
	}
}

// TestHostSIGKILLLeavesNoPlugin: a host killed by SIGKILL cannot clean up,
// so its plugin must notice and exit by itself.
func TestHostSIGKILLLeavesNoPlugin(t *testing.T) {
	for _, s := range pluginStrategies() {
		t.Run(s, func(t *testing.T) {
			h := startHost(t, s, "")
			pid := h.stats(t).PluginPID
			if !supervise.Alive(pid) {
				t.Fatalf("plugin %d not running", pid)
			}
			below := descendantsOf(pid)
			ws := h.dial(t)
			ws.WriteMessage(websocket.TextMessage, []byte(`{"task":"sleep","n":5000}`))
			h.Signal(syscall.SIGKILL)
			if _, ok := h.waitExit(5 * time.Second); !ok {
				t.Fatal("host survived SIGKILL")
			}
			if !supervise.WaitGone(pid, 5*time.Second) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("plugin %d outlived its SIGKILLed host by 5 s", pid)
			}
			for _, p := range below {
				if !supervise.WaitGone(p, 5*time.Second) {
					syscall.Kill(p, syscall.SIGKILL)
					t.Errorf("worker %d outlived its SIGKILLed host by 5 s", p)
				}
			}
		})
	}
}

// TestSIGTERMGraceful: SIGTERM lets tasks that fit in the grace period
// finish, fails the rest with shutting_down, closes the WebSocket with 1001,
// stops the plugin and exits 0.
func TestSIGTERMGraceful(t *testing.T) {
	for _, s := range withPython() {
		t.Run(s, func(t *testing.T) {
			skipMissingPython(t, s)
			h := startHost(t, s, "shutdown_grace_sec = 1\n")
			pid := h.stats(t).PluginPID
			below := descendantsOf(pid)
			ws := h.dial(t)
			for _, f := range []string{`{"id":"long","task":"sleep","n":8000}`, `{"id":"short","task":"sleep","n":300}`} {
				if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond)
			if err := h.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			var closeErr error
			for range 3 {
				msg, err := read(ws, 10*time.Second)
				if err != nil {
					closeErr = err
					break
				}
				r := decode(t, msg)
				got[string(r.ID)] = r.code()
			}
			if got[`"short"`] != "" || got[`"long"`] != "shutting_down" {
				t.Errorf("replies during shutdown: %v; want short ok, long shutting_down", got)
			}
			if !websocket.IsCloseError(closeErr, websocket.CloseGoingAway) {
				t.Errorf("connection ended with %v, want close 1001", closeErr)
			}
			code, ok := h.waitExit(15 * time.Second)
			if !ok || code != 0 {
				t.Fatalf("host exit: code %d, exited %v; want 0", code, ok)
			}
			for _, p := range append(below, pid) {
				if p != 0 && !supervise.WaitGone(p, 5*time.Second) {
					t.Errorf("process %d still running after the host exited", p)
				}
			}
		})
	}
}

//go:build linux

package e2e

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"
)

// fibString computes F(n) independently of package tasks.
func fibString(n int) string {
	a, b := big.NewInt(0), big.NewInt(1)
	for range n {
		a.Add(a, b)
		a, b = b, a
	}
	return a.String()
}

// TestPythonLabClients is the Python lab's run: 200 concurrent clients, each
// sending fib, cpu and io in plain text and waiting for each reply.
func TestPythonLabClients(t *testing.T) {
	const clients = 200
	want := map[string]string{"fib": fibString(5000), "cpu": "499999500000", "io": "1000000"}
	if len(want["fib"]) != 1045 {
		t.Fatalf("F(5000) has %d digits, want 1045", len(want["fib"]))
	}
	for _, s := range withPython() {
		t.Run(s, func(t *testing.T) {
			skipMissingPython(t, s)
			h := startHost(t, s, "")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			g, ctx := errgroup.WithContext(ctx)
			for i := range clients {
				g.Go(func() error {
					d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
					ws, _, err := d.DialContext(ctx, "ws://"+h.addr+"/", nil)
					if err != nil {
						return fmt.Errorf("client %d: dial: %w", i, err)
					}
					defer ws.Close()
					for _, task := range []string{"fib", "cpu", "io"} {
						got, err := call(ws, task, time.Minute)
						if err != nil {
							return fmt.Errorf("client %d: %s: %w", i, task, err)
						}
						if got != want[task] {
							return fmt.Errorf("client %d: %s: got %.80q, want %.80q", i, task, got, want[task])
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			if st := h.stats(t); st.Executor.Completed < 3*clients {
				t.Errorf("strategy reports %d completed tasks, want at least %d", st.Executor.Completed, 3*clients)
			}
		})
	}
}

// TestJSONPipelining sends several JSON requests without waiting: a slow one
// first, whose reply must come last, matched by id.
func TestJSONPipelining(t *testing.T) {
	for _, s := range withPython() {
		t.Run(s, func(t *testing.T) {
			skipMissingPython(t, s)
			h := startHost(t, s, "")
			ws := h.dial(t)
			frames := []string{
				`{"id":"slow","task":"sleep","n":600}`,
				`{"id":2,"task":"noop"}`,
				`{"id":"f","task":"fib","n":90}`,
				`{"id":"c","task":"cpu","n":1000}`,
				`{"task":"io","n":4096}`,
			}
			for _, f := range frames {
				if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
					t.Fatal(err)
				}
			}
			var order []string
			results := map[string]string{}
			for range frames {
				msg, err := read(ws, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				r := decode(t, msg)
				if !r.OK || r.Result == nil || r.Strategy != pluginOf(s) || r.Worker == "" || r.QueueUS == nil || r.RunUS == nil || r.Task == "" {
					t.Fatalf("incomplete success reply: %s", msg)
				}
				id := string(r.ID)
				order = append(order, id)
				results[id] = *r.Result
			}
			if order[len(order)-1] != `"slow"` {
				t.Errorf("reply order %v: the slow task's reply should come last", order)
			}
			want := map[string]string{`"slow"`: "Request done", `2`: "", `"f"`: "2880067194370816120", `"c"`: "499500", `null`: "4096"}
			for id, v := range want {
				if results[id] != v {
					t.Errorf("id %s: result %q, want %q", id, results[id], v)
				}
			}
		})
	}
}

// TestPlainTextOrder pipelines plain-text frames: their replies must come
// back in request order even when a later task finishes first.
func TestPlainTextOrder(t *testing.T) {
	for _, s := range withPython() {
		t.Run(s, func(t *testing.T) {
			skipMissingPython(t, s)
			h := startHost(t, s, "")
			ws := h.dial(t)
			frames := []string{"1", "cpu", "nope", "io", `{"id":"j","task":"noop"}`, "fib"}
			for _, f := range frames {
				if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
					t.Fatal(err)
				}
			}
			var plain []string
			for range frames {
				msg, err := read(ws, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(msg, "{") {
					plain = append(plain, msg)
				}
			}
			if len(plain) != 5 || plain[0] != "Request done" || plain[1] != "499999500000" ||
				!strings.HasPrefix(plain[2], "error: unknown_task") || plain[3] != "1000000" || plain[4] != fibString(5000) {
				t.Errorf("plain replies out of order or wrong: %.60q", plain)
			}
		})
	}
}

// TestSemaphoreWaves is the Python lab's semaphore test: with
// asyn_semaphore = 5, fifteen 1-second sleeps on fifteen connections finish
// in three waves.
func TestSemaphoreWaves(t *testing.T) {
	h := startHost(t, "semaphore", "[other]\nasyn_semaphore = 5\n")
	const n = 15
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = h.dial(t)
	}
	start := time.Now()
	done := make([]time.Duration, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, ws := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := call(ws, "1", 30*time.Second)
			if err == nil && got != "Request done" {
				err = fmt.Errorf("reply %q", got)
			}
			if err != nil {
				errs <- err
			}
			done[i] = time.Since(start)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(done)
	t.Logf("completion times: %v", done)
	// Each wave ends about a second after the previous one; within a wave
	// the five finish together. The bounds are loose: the machine is shared.
	for w := range 3 {
		first, last := done[5*w], done[5*w+4]
		if last-first > 600*time.Millisecond {
			t.Errorf("wave %d spread over %v", w+1, last-first)
		}
		if w > 0 {
			if gap := first - done[5*w-1]; gap < 400*time.Millisecond {
				t.Errorf("wave %d began only %v after wave %d ended", w+1, gap, w)
			}
		}
	}
	if done[n-1] < 2900*time.Millisecond {
		t.Errorf("all 15 finished in %v: at most 5 at once would take 3 s", done[n-1])
	}
}

// TestSemaphorePipelinedFIFO: tasks pipelined on one connection wait for the
// semaphore in the order they were sent, so with one slot they finish in
// that order.
func TestSemaphorePipelinedFIFO(t *testing.T) {
	h := startHost(t, "semaphore", "[other]\nasyn_semaphore = 1\n")
	ws := h.dial(t)
	const n = 8
	for i := range n {
		frame := fmt.Sprintf(`{"id":%d,"task":"sleep","n":50}`, i)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	for range n {
		msg, err := read(ws, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r := decode(t, msg)
		if !r.OK {
			t.Fatalf("reply %s", msg)
		}
		order = append(order, string(r.ID))
	}
	if want := []string{"0", "1", "2", "3", "4", "5", "6", "7"}; !slices.Equal(order, want) {
		t.Errorf("completion order %v, want the sending order %v", order, want)
	}
}

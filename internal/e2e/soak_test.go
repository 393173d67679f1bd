//go:build linux

package e2e

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// soakSample is what the soak reads of the host at one moment.
type soakSample struct {
	rssMB      float64 // host and every process it started
	goroutines int     // the host's
	fds        int     // the host's open file descriptors
}

func sampleHost(t *testing.T, h *hostProc) soakSample {
	t.Helper()
	s := soakSample{goroutines: h.stats(t).Goroutines}
	for _, pid := range append(descendantsOf(h.PID()), h.PID()) {
		if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
					s.rssMB += kb / 1024
				}
			}
		}
	}
	if fds, err := os.ReadDir("/proc/" + strconv.Itoa(h.PID()) + "/fd"); err == nil {
		s.fds = len(fds)
	}
	return s
}

// TestSoak runs each strategy for a share of $WSLAB_SOAK (a duration;
// `make soak` sets it) under a steady pipelined load of every task kind,
// while abusive clients come and go: some never read, some vanish with
// work outstanding, some send what a library would refuse. It reports the
// memory (host and its processes), goroutines and file descriptors at the
// start and the end, and fails only on growth no steady state explains.
// It is not part of `make test`.
func TestSoak(t *testing.T) {
	total, err := time.ParseDuration(os.Getenv("WSLAB_SOAK"))
	if err != nil || total <= 0 {
		t.Skip("set WSLAB_SOAK to a duration (make soak) to run the soak")
	}
	each := total / time.Duration(len(strategies))
	for _, s := range strategies {
		t.Run(s, func(t *testing.T) {
			h := startHost(t, s, "")
			warm := clRunFor(t, each/10, "--url", h.URL, "--protocol", "json", "--clients", "8", "--pipeline", "8",
				"--duration", (each / 10).String(), "--tasks", "noop,fib,cpu,io,sleep", "--n", "fib=2000", "--n", "cpu=100000",
				"--n", "sleep=10", "--n", "io=10000")
			if warm.code != 0 {
				t.Fatalf("warm-up failed: exit %d", warm.code)
			}
			start := sampleHost(t, h)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { abuse(ctx, t, h) })
			r := clRunFor(t, each, "--url", h.URL, "--protocol", "json", "--clients", "16", "--pipeline", "8",
				"--duration", each.String(), "--tasks", "noop,fib,cpu,io,sleep", "--n", "fib=2000", "--n", "cpu=100000",
				"--n", "sleep=10", "--n", "io=10000", "--max-errors", "1000000")
			cancel()
			wg.Wait()
			time.Sleep(2 * time.Second) // abusers' connections close
			end := sampleHost(t, h)
			t.Logf("soak %s for %v: %v right replies, errors %v; RSS %.1f → %.1f MB, goroutines %d → %d, fds %d → %d",
				s, each, num(t, r.summary, "ok"), r.summary["errors"], start.rssMB, end.rssMB,
				start.goroutines, end.goroutines, start.fds, end.fds)
			for _, k := range []string{"wrong", "missing", "connection_failures"} {
				if n := num(t, r.summary, k); n != 0 {
					t.Errorf("%s: %s = %v", s, k, n)
				}
			}
			if end.fds > start.fds+16 || end.goroutines > start.goroutines+64 || end.rssMB > 2*start.rssMB+64 {
				t.Errorf("%s: the host grew beyond a steady state", s)
			}
		})
	}
}

// clRunFor is clRun with room for a run of d.
func clRunFor(t *testing.T, d time.Duration, args ...string) clResult {
	t.Helper()
	return clRunTimeout(t, d+time.Minute, args...)
}

// abuse opens an abusive connection every 200 ms until ctx ends.
func abuse(ctx context.Context, t *testing.T, h *hostProc) {
	bigID := []byte(`{"id":"` + strings.Repeat("z", 50_000) + `","task":"noop"}`)
	for i := 0; ctx.Err() == nil; i++ {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		ws, _, err := d.Dial(h.URL, nil)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
		switch i % 3 {
		case 0: // never reads
			for ws.WriteMessage(websocket.TextMessage, bigID) == nil {
			}
		case 1: // vanishes with work outstanding
			for range 100 {
				ws.WriteMessage(websocket.TextMessage, []byte(`{"task":"fib","n":50000}`))
			}
		case 2: // what a library would refuse
			ws.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0xfe})
			ws.WriteMessage(websocket.TextMessage, []byte{'{', 0xff, '}'})
			ws.WriteMessage(websocket.TextMessage, []byte(`{"id":{"x":1},"task":7}`))
		}
		ws.Close()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

package host

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A client that sends its next request only after the previous reply (the
// Python lab's client, or a pipelining client that keeps exactly
// max_inflight_per_conn requests in flight) must never be told overloaded:
// a task's slots are free before its reply is on its way.
func TestSequentialClientNeverOverloaded(t *testing.T) {
	for _, opt := range []Options{
		{MaxInflight: 1, MaxQueued: 100},
		{MaxInflight: 100, MaxQueued: 1},
	} {
		t.Run(fmt.Sprintf("inflight=%d,queued=%d", opt.MaxInflight, opt.MaxQueued), func(t *testing.T) {
			opt.Strategy = newFake()
			ts := startServer(t, opt)
			ws := dial(t, ts)
			const n = 2000
			refused := 0
			for i := range n {
				sendText(t, ws, fmt.Sprintf(`{"id":%d,"task":"noop"}`, i))
				if r := readReply(t, ws); !r.OK {
					if refused++; refused == 1 {
						t.Logf("request %d: %s: %s", i, r.Error.Code, r.Error.Message)
					}
				}
			}
			if refused > 0 {
				t.Errorf("%d of %d strictly sequential requests were refused", refused, n)
			}
		})
	}
}

// Shutdown(grace) is not held up for writeWait (10 s) by a client that
// stopped reading: replies stuck behind it are dropped once the grace is
// over, and the 1001 close does not queue behind them.
func TestShutdownNotHeldBySlowReader(t *testing.T) {
	f := newFake()
	f.noopValue = strings.Repeat("x", 60000)
	ts := startServer(t, Options{Strategy: f, MaxInflight: 4})
	ws := dial(t, ts)
	go func() {
		ws.SetWriteDeadline(time.Now().Add(guard))
		for range 5000 {
			if ws.WriteMessage(websocket.TextMessage, []byte(`{"task":"noop"}`)) != nil {
				return
			}
		}
	}()
	// Wait until the server's writes back up: every in-flight slot is held
	// by a reply that cannot be written.
	waitFor(t, "replies backed up", func() bool { return ts.inflight() == 4 && f.calls.Load() > 4 })
	time.Sleep(200 * time.Millisecond)
	if took := shutdownWithin(t, ts.Server, 100*time.Millisecond, 20*time.Second); took > 2500*time.Millisecond {
		t.Errorf("Shutdown(100ms) took %s with one client that does not read", took)
	}
}

// Concurrent upgrades must not overshoot max_connections together.
func TestMaxConnectionsConcurrentDials(t *testing.T) {
	const limit, dials = 5, 40
	ts := startServer(t, Options{MaxConnections: limit})
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		ok, unavailable int
		other           []string
	)
	start := make(chan struct{})
	release := make(chan struct{})
	for range dials {
		wg.Go(func() {
			<-start
			ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(), nil)
			mu.Lock()
			switch {
			case err == nil:
				ok++
			case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
				unavailable++
			default:
				other = append(other, err.Error())
			}
			mu.Unlock()
			if err == nil {
				<-release // hold the connection until every dial is done
				ws.Close()
			}
		})
	}
	close(start)
	waitFor(t, "every dial answered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ok+unavailable+len(other) == dials
	})
	close(release)
	wg.Wait()
	if ok > limit || ok == 0 || len(other) > 0 {
		t.Errorf("%d upgrades succeeded, %d got 503, other errors %v; want at most %d upgrades", ok, unavailable, other, limit)
	}
}

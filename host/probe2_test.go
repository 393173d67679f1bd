package host

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestProbeShutdownSlowReader(t *testing.T) {
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
	time.Sleep(time.Second) // let the server's writes back up
	start := time.Now()
	ts.Shutdown(100 * time.Millisecond)
	t.Logf("Shutdown(100ms) took %s", time.Since(start))
}

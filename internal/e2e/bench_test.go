package e2e

import (
	"testing"

	"github.com/gorilla/websocket"
)

// BenchmarkNoopRoundTrip is one JSON noop request and its reply through a
// real host, sequentially on one connection: the fixed cost of each
// strategy (inproc has no plugin hop; the others pay one gRPC stream hop).
//
//	go test -run '^$' -bench NoopRoundTrip -count 5 ./internal/e2e
func BenchmarkNoopRoundTrip(b *testing.B) {
	for _, s := range strategies {
		b.Run(s, func(b *testing.B) {
			h := startHost(b, s, "")
			ws := h.dial(b)
			frame := []byte(`{"id":1,"task":"noop"}`)
			for b.Loop() {
				if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
					b.Fatal(err)
				}
				if _, _, err := ws.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

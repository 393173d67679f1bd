package telemetry

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// BenchmarkAnswered is what counting one reply costs the host, from every
// core at once as the load does it.
//
//	go test -run '^$' -bench Answered -count 5 ./internal/telemetry
func BenchmarkAnswered(b *testing.B) {
	m := NewHostMetrics(NewRegistry(3), "inproc")
	res := taskproto.Result{Queue: 3 * time.Microsecond, Run: 700 * time.Nanosecond}
	var conns atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		conn := conns.Add(1) // each goroutine a connection of its own
		for pb.Next() {
			m.Answered(conn, taskproto.KindNoop, "", res, true)
		}
	})
}

func BenchmarkAnsweredSerial(b *testing.B) {
	m := NewHostMetrics(NewRegistry(3), "inproc")
	res := taskproto.Result{Queue: 3 * time.Microsecond, Run: 700 * time.Nanosecond}
	for b.Loop() {
		m.Answered(1, taskproto.KindNoop, "", res, true)
	}
}

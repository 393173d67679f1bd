package client

import (
	"fmt"
	"testing"
)

// BenchmarkHandleReply is the client's per-reply bookkeeping, in-process
// with no network: register the request as pending, then decode and check
// its reply, match it by id, count it and record its latency (and, for
// JSON, its queue and run times) in the histograms.
func BenchmarkHandleReply(b *testing.B) {
	fib := Fib(5000).String()
	for _, bc := range []struct {
		name, protocol, task string
		reply                func(id string) string
	}{
		{"plain/cpu", "plain", "cpu", func(string) string { return "499999500000" }},
		{"plain/fib5000", "plain", "fib", func(string) string { return fib }},
		{"json/noop", "json", "noop", func(id string) string {
			return `{"id":"` + id + `","task":"noop","ok":true,"result":"","strategy":"inproc","worker":"w1","queue_us":3,"run_us":1}`
		}},
		{"json/cpu", "json", "cpu", func(id string) string {
			return `{"id":"` + id + `","task":"cpu","ok":true,"result":"499999500000","strategy":"inproc","worker":"w1","queue_us":12,"run_us":480}`
		}},
		{"json/fib5000", "json", "fib", func(id string) string {
			return `{"id":"` + id + `","task":"fib","ok":true,"result":"` + fib + `","strategy":"inproc","worker":"w1","queue_us":12,"run_us":480}`
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			o := baseOptions()
			o.Protocol, o.Tasks = bc.protocol, []string{bc.task}
			_, c := testConn(b, o)
			// Replies are prepared in advance for the ids the loop will use.
			const ring = 1024
			frames := make([][]byte, ring)
			for i := range frames {
				frames[i] = []byte(bc.reply(fmt.Sprintf("c0-%d", i)))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if i%ring == 0 && i > 0 {
					b.StopTimer()
					c.mu.Lock()
					c.nextSeq, c.lowSeq = 0, 0 // reuse the prepared ids
					c.mu.Unlock()
					b.StartTimer()
				}
				c.register(c.r.now())
				if !c.handleReply(frames[i%ring], c.r.now()) {
					b.Fatal("reply not matched")
				}
			}
			b.StopTimer()
			if c.wrong != 0 || len(c.errors) != 0 {
				b.Fatalf("wrong %d errors %v: %q", c.wrong, c.errors, c.wrongSamples)
			}
		})
	}
}

package client

import (
	"math/rand/v2"
	"slices"

	"github.com/wslab/wslab/taskproto"
)

// With Options.Timing every JSON request asks for its timeline
// ("timing": true). The client adds the two ends the host cannot see, its
// send and its read of the reply, and sums up, per task kind, how long
// requests spend between each stage and the next.

// maxTimedPerConn bounds the timelines a connection keeps: a uniform
// sample of its timed replies (reservoir sampling).
const maxTimedPerConn = 2048

// The points of a timeline as the client sees it: its send, the host's
// stages (taskproto.Stage + 1), its read.
const (
	pointClientSent = 0
	pointClientRecv = int(taskproto.NumStages) + 1
	numPoints       = int(taskproto.NumStages) + 2
)

func pointName(p int) string {
	switch p {
	case pointClientSent:
		return "client_sent"
	case pointClientRecv:
		return "client_recv"
	}
	return taskproto.Stage(p - 1).String()
}

// StageSpan is how long requests of one kind spent from one stage of
// their timeline to the next stage they passed (the median of the sampled
// requests that passed both).
type StageSpan struct {
	From  string  `json:"from"`
	To    string  `json:"to"`
	P50   float64 `json:"p50_us"`
	Count int     `json:"count"`
}

// timed is one reply's timeline, ns of CLOCK_MONOTONIC by point (0: not
// passed).
type timed struct {
	kind uint8
	at   [numPoints]int64
}

// timings is a connection's sample of timelines; its reader owns it.
type timings struct {
	seen   int
	sample []timed
}

func (ts *timings) add(t timed) {
	ts.seen++
	if len(ts.sample) < maxTimedPerConn {
		ts.sample = append(ts.sample, t)
		return
	}
	if i := rand.IntN(ts.seen); i < maxTimedPerConn {
		ts.sample[i] = t
	}
}

// timelineOf is a reply's timeline with the client's own ends, sent and
// received at those instants.
func timelineOf(kind int, stages map[string]int64, sent, received int64) timed {
	t := timed{kind: uint8(kind)}
	t.at[pointClientSent], t.at[pointClientRecv] = sent, received
	for name, ns := range stages {
		if s, ok := taskproto.StageNamed(name); ok && ns > 0 {
			t.at[int(s)+1] = ns
		}
	}
	return t
}

// stageSpans sums up the connections' timelines per task kind name.
func stageSpans(conns []*conn) map[string][]StageSpan {
	type key struct {
		kind     uint8
		from, to int
	}
	spans := map[key][]float64{}
	for _, c := range conns {
		for _, t := range c.timings.sample {
			prev := -1
			for p := range numPoints {
				if t.at[p] == 0 {
					continue
				}
				if prev >= 0 {
					k := key{t.kind, prev, p}
					spans[k] = append(spans[k], float64(t.at[p]-t.at[prev])/1000)
				}
				prev = p
			}
		}
	}
	if len(spans) == 0 {
		return nil
	}
	keys := make([]key, 0, len(spans))
	for k := range spans {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		if a.from != b.from {
			return a.from - b.from
		}
		return a.to - b.to
	})
	out := map[string][]StageSpan{}
	for _, k := range keys {
		name := kindNames[k.kind]
		v := spans[k]
		out[name] = append(out[name], StageSpan{From: pointName(k.from), To: pointName(k.to), P50: median(v), Count: len(v)})
	}
	return out
}

func median(v []float64) float64 {
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else {
		return (v[n/2-1] + v[n/2]) / 2
	}
}

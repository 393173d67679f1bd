package host

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/taskproto"
)

// The live page's figures: per task kind, replies and errors counted and
// the run and total times of tasks kept in histograms of fixed log-scale
// buckets, cumulative and lock-free (an atomic add each, in the shard of
// the reply's connection). A live stream
// takes a snapshot every second and reports the differences between its
// own snapshots, so that its rates are of the last second and its
// percentiles of the last liveLatencyTicks seconds, never since start.
//
// Nothing is recorded while no live stream is open: a host nobody watches
// pays one atomic load per reply.

// Histogram buckets: below 2^histMinExp ns (about 1 µs) one bucket, then
// 2^histSubBits buckets per power of two (each about 19 % wide) up to
// 2^(histMaxExp+1) ns (about 137 s), where values are clamped.
const (
	histMinExp  = 10
	histMaxExp  = 36
	histSubBits = 2
	histBuckets = 1 + (histMaxExp-histMinExp+1)<<histSubBits
)

// histBucket is the bucket of a duration of ns nanoseconds.
func histBucket(ns int64) int {
	if ns < 1<<histMinExp {
		return 0
	}
	e := bits.Len64(uint64(ns)) - 1
	if e > histMaxExp {
		return histBuckets - 1
	}
	sub := int(uint64(ns)>>(e-histSubBits)) & (1<<histSubBits - 1)
	return 1 + (e-histMinExp)<<histSubBits + sub
}

// histBounds are the lower and upper ends of bucket i, in nanoseconds.
func histBounds(i int) (lo, hi float64) {
	if i == 0 {
		return 0, 1 << histMinExp
	}
	e := histMinExp + (i-1)>>histSubBits
	sub := (i - 1) & (1<<histSubBits - 1)
	width := float64(uint64(1) << (e - histSubBits))
	lo = float64(uint64(1)<<e) + float64(sub)*width
	return lo, lo + width
}

// liveKindCounts are one task kind's cumulative figures, as a snapshot
// holds them.
type liveKindCounts struct {
	answered, failed uint64
	run, total       [histBuckets]uint64
}

// liveKindRecorder is one task kind's cumulative figures as they are
// recorded.
type liveKindRecorder struct {
	answered, failed atomic.Uint64
	run, total       [histBuckets]atomic.Uint64
}

// liveKinds are the kinds the live page reports: the protocol's, then
// telemetry.Other for anything else (no label comes from a client).
var liveKinds = append(append([]string(nil), taskproto.Kinds...), telemetry.Other)

// liveKindIndex maps a protocol kind to its place in liveKinds.
var liveKindIndex = func() map[string]int {
	m := make(map[string]int, len(taskproto.Kinds))
	for i, k := range taskproto.Kinds {
		m[k] = i
	}
	return m
}()

// numLiveKinds is len(liveKinds), as a constant for the shards' arrays;
// TestLiveHistogram checks it.
const numLiveKinds = 6

// liveShards is how many shards the live counts are spread over, each
// connection recording into one (by its id), as telemetry's reply counts
// are: atomics that busy connections on two cores both added to would
// bounce their cache line between them, which costs more than the rest of
// the recording.
const liveShards = 8

// liveShard is one shard of the live counts.
type liveShard struct {
	kinds [numLiveKinds]liveKindRecorder
	_     [64]byte // the next shard's counts start on a line of their own
}

// liveRecorder counts replies for the live page while it is watched.
type liveRecorder struct {
	watchers atomic.Int32 // live streams open; changed under Server.mu
	shards   [liveShards]liveShard
}

func newLiveRecorder() *liveRecorder { return &liveRecorder{} }

// answered records a reply to a task of kind on connection conn: an
// error reply when code is set, else a result whose task ran for run. A
// task that was admitted (arrived set) has its total time, from its
// frame's arrival until now, recorded too; a refusal before admission has
// none.
//
// It is small enough to be inlined into the reply path, where, unwatched,
// it is the one atomic load.
func (l *liveRecorder) answered(conn uint64, kind string, code taskproto.Code, run time.Duration, arrived time.Time) {
	if l.watchers.Load() != 0 {
		l.record(conn, kind, code, run, arrived)
	}
}

func (l *liveRecorder) record(conn uint64, kind string, code taskproto.Code, run time.Duration, arrived time.Time) {
	i, ok := liveKindIndex[kind]
	if !ok {
		i = len(liveKinds) - 1
	}
	k := &l.shards[conn%liveShards].kinds[i]
	k.answered.Add(1)
	if code != "" {
		k.failed.Add(1)
	} else {
		k.run[histBucket(int64(run))].Add(1)
	}
	if !arrived.IsZero() {
		k.total[histBucket(int64(time.Since(arrived)))].Add(1)
	}
}

// liveSnapshot is the recorder's figures at an instant.
type liveSnapshot struct {
	at    time.Time
	kinds []liveKindCounts
}

// snapshot reads the recorder into into (allocated when nil), at now.
// Each counter is read on its own, the shards added up: a reply recorded
// meanwhile may show in one of a kind's counters and not yet in another,
// which the next snapshot evens out.
func (l *liveRecorder) snapshot(into *liveSnapshot, now time.Time) {
	if into.kinds == nil {
		into.kinds = make([]liveKindCounts, numLiveKinds)
	}
	into.at = now
	for i := range into.kinds {
		dst := &into.kinds[i]
		*dst = liveKindCounts{}
		for sh := range l.shards {
			src := &l.shards[sh].kinds[i]
			dst.answered += src.answered.Load()
			dst.failed += src.failed.Load()
			for b := range histBuckets {
				dst.run[b] += src.run[b].Load()
				dst.total[b] += src.total[b].Load()
			}
		}
	}
}

// liveLatencyTicks is how many seconds (ticks of a live stream) its
// percentiles cover: enough replies for a p99 at moderate rates, recent
// enough to follow a change of load.
const liveLatencyTicks = 5

// liveWindow is a live stream's last snapshots, oldest first: one more
// than liveLatencyTicks, so that the oldest is where the latency window
// starts. first is the stream's first snapshot, where "since the page
// opened" counts from.
type liveWindow struct {
	first liveSnapshot
	ring  [liveLatencyTicks + 1]liveSnapshot
	n     int // snapshots taken, including first
}

// take adds a snapshot of rec at now, reusing the memory of the oldest.
func (w *liveWindow) take(rec *liveRecorder, now time.Time) {
	slot := &w.ring[w.n%len(w.ring)]
	rec.snapshot(slot, now)
	if w.n == 0 {
		w.first.kinds = make([]liveKindCounts, len(slot.kinds))
		copy(w.first.kinds, slot.kinds)
		w.first.at = now
	}
	w.n++
}

// at is the snapshot taken back ticks before the latest (0: the latest);
// false when there is none that old.
func (w *liveWindow) at(back int) (*liveSnapshot, bool) {
	if back >= w.n || back >= len(w.ring) {
		return nil, false
	}
	return &w.ring[(w.n-1-back)%len(w.ring)], true
}

// LiveLatency are percentiles of a task kind's times, in milliseconds,
// over a live event's latency window; Count 0: no task in it.
type LiveLatency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
}

// LiveKind is one task kind's figures in a live event.
type LiveKind struct {
	Kind string `json:"kind"`
	// Answered counts its replies since the stream began.
	Answered uint64 `json:"answered"`
	// TasksPerSecond and ErrorsPerSecond are replies (errors among them)
	// per second over the event's interval.
	TasksPerSecond  float64 `json:"tasks_per_s"`
	ErrorsPerSecond float64 `json:"errors_per_s"`
	// Run is how long its tasks ran (results only), Total how long they
	// took from the arrival of their frame to their reply.
	Run   LiveLatency `json:"run"`
	Total LiveLatency `json:"total"`
}

// LiveRates are a live event's throughput figures.
type LiveRates struct {
	// IntervalSeconds is what the rates cover (the last tick; 0 in a
	// stream's first event, which has no rates), LatencySeconds what the
	// percentiles cover.
	IntervalSeconds float64    `json:"interval_s"`
	LatencySeconds  float64    `json:"latency_window_s"`
	TasksPerSecond  float64    `json:"tasks_per_s"`
	ErrorsPerSecond float64    `json:"errors_per_s"`
	Answered        uint64     `json:"answered"` // since the stream began
	Kinds           []LiveKind `json:"kinds"`
}

// rates computes the window's figures from its snapshots.
func (w *liveWindow) rates() LiveRates {
	r := LiveRates{Kinds: make([]LiveKind, len(liveKinds))}
	now, ok := w.at(0)
	if !ok {
		return r
	}
	prev, hasPrev := w.at(1)
	oldest := prev
	for back := 2; back <= liveLatencyTicks; back++ {
		if s, ok := w.at(back); ok {
			oldest = s
		}
	}
	if hasPrev {
		r.IntervalSeconds = now.at.Sub(prev.at).Seconds()
		r.LatencySeconds = now.at.Sub(oldest.at).Seconds()
	}
	for i, kind := range liveKinds {
		cur := &now.kinds[i]
		k := LiveKind{Kind: kind, Answered: cur.answered - w.first.kinds[i].answered}
		r.Answered += k.Answered
		if hasPrev && r.IntervalSeconds > 0 {
			p := &prev.kinds[i]
			k.TasksPerSecond = float64(cur.answered-p.answered) / r.IntervalSeconds
			k.ErrorsPerSecond = float64(cur.failed-p.failed) / r.IntervalSeconds
			o := &oldest.kinds[i]
			k.Run = latencyOf(&cur.run, &o.run)
			k.Total = latencyOf(&cur.total, &o.total)
		}
		r.TasksPerSecond += k.TasksPerSecond
		r.ErrorsPerSecond += k.ErrorsPerSecond
		r.Kinds[i] = k
	}
	return r
}

// latencyOf is the percentiles of the values recorded between two
// cumulative histograms.
func latencyOf(cur, old *[histBuckets]uint64) LiveLatency {
	var delta [histBuckets]uint64
	var n uint64
	for i := range delta {
		if cur[i] > old[i] {
			delta[i] = cur[i] - old[i]
		}
		n += delta[i]
	}
	if n == 0 {
		return LiveLatency{}
	}
	return LiveLatency{Count: n, P50: quantileMS(&delta, n, 0.50), P99: quantileMS(&delta, n, 0.99)}
}

// quantileMS is the q quantile, in milliseconds, of the n values counted
// in buckets, interpolated linearly inside the bucket it falls in.
func quantileMS(buckets *[histBuckets]uint64, n uint64, q float64) float64 {
	rank := q * float64(n)
	var below uint64
	for i, c := range buckets {
		if c == 0 {
			continue
		}
		if float64(below+c) >= rank {
			lo, hi := histBounds(i)
			frac := (rank - float64(below)) / float64(c)
			return (lo + frac*(hi-lo)) / float64(time.Millisecond)
		}
		below += c
	}
	_, hi := histBounds(histBuckets - 1)
	return hi / float64(time.Millisecond)
}

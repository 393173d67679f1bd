package telemetry

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wslab/wslab/taskproto"
)

// The host counts every reply, from every core at once: client_golang's
// CounterVec and HistogramVec (native buckets on) cost about 100 ns a
// reply on one core and 450 ns on two, their atomics bouncing between the
// cores, a tenth of a pipelined noop's whole cost. answers counts into
// shards instead, each connection into one (by its id), with plain atomic
// adds and no lookup, and builds the same series at a scrape.

// answerShards is how many shards the reply counts are spread over: two
// busy connections share one with a chance of 1 in answerShards.
const answerShards = 8

// Native buckets: schema 2 (each bucket 2^(1/4) ≈ 1.19 times the last),
// keys from nativeMinKey (2^-32 s, a quarter nanosecond) to nativeMaxKey
// (2^8 s, past any timeout); a duration beyond them counts in the edge
// bucket, and 0 in the zero bucket.
const (
	nativeSchema = 2
	nativeMinKey = -128
	nativeMaxKey = 32
)

// nativeBounds are the fractions (of frexp) where schema 2's buckets
// start within an octave; it is client_golang's table for that schema.
var nativeBounds = []float64{0.5, 0.5946035575013605, 0.7071067811865475, 0.8408964152537144}

// durationCounts is one shard of one histogram: classic buckets (the last
// is +Inf), native ones, the zero bucket, the count and the sum.
type durationCounts struct {
	classic  [len(durationBuckets) + 1]atomic.Uint64
	native   [nativeMaxKey - nativeMinKey + 1]atomic.Uint64
	zero     atomic.Uint64
	count    atomic.Uint64
	sumNanos atomic.Int64
}

// classicNanos are durationBuckets in nanoseconds.
var classicNanos = func() []int64 {
	out := make([]int64, len(durationBuckets))
	for i, b := range durationBuckets {
		out[i] = int64(math.Round(b * 1e9))
	}
	return out
}()

func (c *durationCounts) observe(d time.Duration) {
	ns := int64(d)
	i := 0
	for i < len(classicNanos) && ns > classicNanos[i] {
		i++
	}
	c.classic[i].Add(1)
	if ns <= 0 {
		c.zero.Add(1)
	} else {
		c.native[nativeKey(d.Seconds())-nativeMinKey].Add(1)
	}
	c.count.Add(1)
	c.sumNanos.Add(ns)
}

// nativeKey is the schema-2 bucket of v > 0, as client_golang computes it,
// within [nativeMinKey, nativeMaxKey].
func nativeKey(v float64) int {
	frac, exp := math.Frexp(v)
	i := 0 // sort.SearchFloat64s(nativeBounds, frac), without its call
	for i < len(nativeBounds) && nativeBounds[i] < frac {
		i++
	}
	return min(max(i+(exp-1)*len(nativeBounds), nativeMinKey), nativeMaxKey)
}

// answerShard is one shard of every reply count.
type answerShard struct {
	tasks      [numKinds][numOutcomes]atomic.Uint64
	queue, run [numKinds]durationCounts
	_          [64]byte // the next shard's counts start on a line of their own
}

// kindLabels are the kind label's values, taskproto.Kinds then Other;
// outcomeLabels the outcome's, OK, the codes, then Other.
var (
	kindLabels    = append(append([]string(nil), taskproto.Kinds...), Other)
	outcomeLabels = func() []string {
		out := []string{OK}
		for _, c := range codes {
			out = append(out, string(c))
		}
		return append(out, Other)
	}()
)

const (
	numKinds    = 6  // len(kindLabels); TestLabelSets checks
	numOutcomes = 12 // len(outcomeLabels)
)

func kindIndex(kind string) int {
	for i, k := range taskproto.Kinds {
		if k == kind {
			return i
		}
	}
	return numKinds - 1
}

func outcomeIndex(code taskproto.Code) int {
	if code == "" {
		return 0
	}
	for i, c := range codes {
		if c == code {
			return i + 1
		}
	}
	return numOutcomes - 1
}

// answers are the reply counts, and the collector that reports them as
// wslab_tasks_total, wslab_task_queue_seconds and wslab_task_run_seconds.
type answers struct {
	shards             [answerShards]answerShard
	tasks, queue, run  *prometheus.Desc
	createdAt          time.Time
	classicUpperBounds []float64
}

func newAnswers(constant prometheus.Labels) *answers {
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "", n) }
	return &answers{
		tasks: prometheus.NewDesc(name("tasks_total"),
			"Requests answered, by task kind and outcome (ok, or the error code of the reply).",
			[]string{"kind", "outcome"}, constant),
		queue: prometheus.NewDesc(name("task_queue_seconds"),
			"Time a task waited for a slot, a goroutine or a worker, by kind.", []string{"kind"}, constant),
		run:       prometheus.NewDesc(name("task_run_seconds"), "Time a task ran, by kind.", []string{"kind"}, constant),
		createdAt: time.Now(),
	}
}

func (a *answers) add(shard uint64, kind string, code taskproto.Code, res taskproto.Result, ran bool) {
	s := &a.shards[shard%answerShards]
	k := kindIndex(kind)
	s.tasks[k][outcomeIndex(code)].Add(1)
	if ran {
		s.queue[k].observe(res.Queue)
		s.run[k].observe(res.Run)
	}
}

func (a *answers) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.tasks
	ch <- a.queue
	ch <- a.run
}

func (a *answers) Collect(ch chan<- prometheus.Metric) {
	for k, kind := range kindLabels {
		for o, outcome := range outcomeLabels {
			var n uint64
			for i := range a.shards {
				n += a.shards[i].tasks[k][o].Load()
			}
			ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(a.tasks, prometheus.CounterValue, float64(n), a.createdAt, kind, outcome)
		}
		ch <- a.histogram(a.queue, kind, func(s *answerShard) *durationCounts { return &s.queue[k] })
		ch <- a.histogram(a.run, kind, func(s *answerShard) *durationCounts { return &s.run[k] })
	}
}

// histogram sums one kind's shards of a histogram into a metric with both
// classic and native buckets, as client_golang's own histograms write.
func (a *answers) histogram(desc *prometheus.Desc, kind string, of func(*answerShard) *durationCounts) prometheus.Metric {
	var (
		classic  [len(durationBuckets) + 1]uint64
		native   = map[int]int64{}
		zero     uint64
		count    uint64
		sumNanos int64
	)
	for i := range a.shards {
		c := of(&a.shards[i])
		// Read the count first and the buckets after: an observation
		// in between shows in a bucket, not the count, and the count is
		// then raised to the buckets' sum, which client_golang checks.
		count += c.count.Load()
		sumNanos += c.sumNanos.Load()
		for j := range classic {
			classic[j] += c.classic[j].Load()
		}
		for j := range c.native {
			if n := c.native[j].Load(); n > 0 {
				native[j+nativeMinKey] += int64(n)
			}
		}
		zero += c.zero.Load()
	}
	var inBuckets uint64 = zero
	for _, n := range native {
		inBuckets += uint64(n)
	}
	count = max(count, inBuckets)
	cumulative := make(map[float64]uint64, len(durationBuckets))
	var sum uint64
	for j, upper := range durationBuckets {
		sum += classic[j]
		cumulative[upper] = sum
	}
	seconds := float64(sumNanos) / 1e9
	h := prometheus.MustNewConstNativeHistogram(desc, count, seconds, native, nil, zero, nativeSchema, 0, a.createdAt, kind)
	c := prometheus.MustNewConstHistogramWithCreatedTimestamp(desc, count, seconds, cumulative, a.createdAt, kind)
	return both{native: h, classic: c}
}

// both is a histogram metric written with the native buckets of one and
// the classic buckets of the other.
type both struct{ native, classic prometheus.Metric }

func (b both) Desc() *prometheus.Desc { return b.native.Desc() }

func (b both) Write(m *dto.Metric) error {
	if err := b.native.Write(m); err != nil {
		return err
	}
	var c dto.Metric
	if err := b.classic.Write(&c); err != nil {
		return err
	}
	m.Histogram.Bucket = c.Histogram.Bucket
	return nil
}

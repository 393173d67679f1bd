package client

import (
	"math"
	"slices"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: microseconds, 1 µs .. 1 h, 3 significant figures.
const (
	histLowUS   = 1
	histHighUS  = int64(time.Hour / time.Microsecond)
	histSigFigs = 3
)

type hdrHist = hdrhistogram.Histogram

func anyHist(hs [numKinds]*hdrHist) bool {
	for _, h := range hs {
		if h != nil && h.TotalCount() > 0 {
			return true
		}
	}
	return false
}

func newHist() *hdrHist {
	return hdrhistogram.New(histLowUS, histHighUS, histSigFigs)
}

// recordUS records v microseconds in *h, creating it on first use (most
// shards see few kinds), clamped to the histogram's range so that nothing
// is dropped.
func recordUS(h **hdrHist, v int64) {
	if *h == nil {
		*h = newHist()
	}
	(*h).RecordValue(min(max(v, 0), histHighUS))
}

// record is one right reply's times in microseconds; queue and run are -1
// when the reply did not carry them, lag is -1 outside open loop.
type record struct {
	kind                 uint8
	lat, queue, run, lag int64
}

// recBatch is how many records a connection keeps before it takes its
// shard's lock to record them.
const recBatch = 256

// shard holds histograms that several connections flush their records
// into. A histogram of this geometry takes about 190 KB, so one set per
// connection would cost hundreds of megabytes at the lab's connection
// counts; a connection instead collects its records in a buffer of its own
// (no lock on the hot path) and records them in its shard once per
// recBatch replies. Shards are merged with hdrhistogram's Merge at the end.
type shard struct {
	mu              sync.Mutex
	lat, queue, run [numKinds]*hdrHist
	lag             *hdrHist // open loop: send time - due time
	_               [64]byte // keep shards' locks off one cache line
}

func (s *shard) add(recs []record) {
	if len(recs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		k := r.kind
		recordUS(&s.lat[k], r.lat)
		if r.queue >= 0 {
			recordUS(&s.queue[k], r.queue)
		}
		if r.run >= 0 {
			recordUS(&s.run[k], r.run)
		}
		if r.lag >= 0 {
			recordUS(&s.lag, r.lag)
		}
	}
}

// mergeKinds merges one histogram family of every shard per kind; the
// result has an entry for every kind recorded at least once.
func mergeKinds(shards []*shard, pick func(*shard) *[numKinds]*hdrHist) [numKinds]*hdrHist {
	var out [numKinds]*hdrHist
	for _, s := range shards {
		for k, h := range pick(s) {
			if h == nil {
				continue
			}
			if out[k] == nil {
				out[k] = newHist()
			}
			out[k].Merge(h)
		}
	}
	return out
}

// summarise turns per-kind histograms into Percentiles keyed by kind name,
// for the kinds in want (always listed, even with no values) and any other
// recorded, plus "all".
func summarise(hs [numKinds]*hdrHist, want []int) map[string]Percentiles {
	out := map[string]Percentiles{}
	total := newHist()
	for k, h := range hs {
		if h == nil && !slices.Contains(want, k) {
			continue
		}
		out[kindNames[k]] = percentilesOf(h)
		if h != nil {
			total.Merge(h)
		}
	}
	out["all"] = percentilesOf(total)
	return out
}

// percentilesOf summarises a histogram of microseconds in milliseconds.
func percentilesOf(h *hdrHist) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	v := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	return Percentiles{
		Count: h.TotalCount(),
		Min:   ms(h.Min()),
		Mean:  h.Mean() / 1000,
		P50:   ms(v[50]),
		P90:   ms(v[90]),
		P99:   ms(v[99]),
		P999:  ms(v[99.9]),
		Max:   ms(h.Max()),
	}
}

// exactPercentiles summarises a few values (already in milliseconds)
// exactly, by nearest rank.
func exactPercentiles(ms []float64) Percentiles {
	if len(ms) == 0 {
		return Percentiles{}
	}
	v := slices.Clone(ms)
	slices.Sort(v)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(v)))) - 1
		return v[min(max(i, 0), len(v)-1)]
	}
	var sum float64
	for _, x := range v {
		sum += x
	}
	return Percentiles{
		Count: int64(len(v)),
		Min:   v[0],
		Mean:  sum / float64(len(v)),
		P50:   rank(50),
		P90:   rank(90),
		P99:   rank(99),
		P999:  rank(99.9),
		Max:   v[len(v)-1],
	}
}

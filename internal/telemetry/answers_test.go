package telemetry

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/wslab/wslab/taskproto"
)

func TestLabelSets(t *testing.T) {
	if len(kindLabels) != numKinds || len(outcomeLabels) != numOutcomes {
		t.Fatalf("numKinds %d, numOutcomes %d; the label sets have %d and %d", numKinds, numOutcomes, len(kindLabels), len(outcomeLabels))
	}
}

// The sharded histograms write what client_golang's own histogram, with
// the same classic buckets and native schema, writes for the same
// observations, on any shards.
func TestAnswersMatchClientGolang(t *testing.T) {
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ref", Help: "ref", Buckets: durationBuckets[:],
		NativeHistogramBucketFactor: 1.19, NativeHistogramZeroThreshold: prometheus.NativeHistogramZeroThresholdZero,
		NativeHistogramMaxBucketNumber: 1000,
	})
	a := newAnswers(nil)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		var d time.Duration
		switch i % 10 {
		case 0:
			d = 0
		case 1:
			d = time.Duration(rng.IntN(3)) // a few nanoseconds
		default:
			d = time.Duration(rng.ExpFloat64() * float64(time.Duration(1)<<rng.IntN(34)))
		}
		d = d.Round(time.Nanosecond)
		ref.Observe(d.Seconds())
		a.add(uint64(i), taskproto.KindFib, "", taskproto.Result{Run: d}, true)
	}
	var want, got dto.Metric
	if err := ref.Write(&want); err != nil {
		t.Fatal(err)
	}
	if err := a.histogram(a.run, taskproto.KindFib, func(s *answerShard) *durationCounts { return &s.run[kindIndex(taskproto.KindFib)] }).Write(&got); err != nil {
		t.Fatal(err)
	}
	w, g := want.Histogram, got.Histogram
	if w.GetSchema() != nativeSchema {
		t.Fatalf("client_golang chose schema %d for factor 1.19, want %d", w.GetSchema(), nativeSchema)
	}
	if g.GetSampleCount() != w.GetSampleCount() || g.GetZeroCount() != w.GetZeroCount() || g.GetSchema() != w.GetSchema() {
		t.Errorf("count %d zero %d schema %d; client_golang: %d %d %d", g.GetSampleCount(), g.GetZeroCount(), g.GetSchema(),
			w.GetSampleCount(), w.GetZeroCount(), w.GetSchema())
	}
	if diff := g.GetSampleSum() - w.GetSampleSum(); diff > 1e-6 || diff < -1e-6 {
		t.Errorf("sum %v, client_golang %v", g.GetSampleSum(), w.GetSampleSum())
	}
	for i, b := range w.Bucket {
		if i >= len(g.Bucket) || !proto.Equal(b, g.Bucket[i]) {
			t.Fatalf("classic buckets differ at %d: %v; client_golang %v", i, g.Bucket, w.Bucket)
		}
	}
	if len(w.PositiveSpan) == 0 || len(w.Bucket) != len(durationBuckets) {
		t.Fatalf("client_golang wrote %d native spans and %d classic buckets", len(w.PositiveSpan), len(w.Bucket))
	}
	if !spansEqual(g.PositiveSpan, w.PositiveSpan) || !slicesEqual(g.PositiveDelta, w.PositiveDelta) {
		t.Errorf("native buckets differ:\n%v %v\nclient_golang:\n%v %v", g.PositiveSpan, g.PositiveDelta, w.PositiveSpan, w.PositiveDelta)
	}
}

func spansEqual(a, b []*dto.BucketSpan) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

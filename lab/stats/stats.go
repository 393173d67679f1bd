// Package stats is the statistics the lab and the bench need to report a
// noisy machine's figures honestly: medians of repeated trials, their
// distribution-free confidence intervals, and the Mann-Whitney U test that
// calls a difference significant. The estimates and the test are
// golang.org/x/perf/benchmath's, the code behind benchstat, so that a lab
// figure and a benchstat figure mean the same.
package stats

import (
	"math"
	"slices"
	"sync"

	"golang.org/x/perf/benchmath"
)

const (
	// Confidence is the level of every interval the lab reports.
	Confidence = 0.95
	// Alpha is the level below which a difference is called significant.
	Alpha = 0.05
)

var thresholds = &benchmath.Thresholds{CompareAlpha: Alpha}

// Median is the middle of xs (the mean of the two middle values for an
// even count); NaN for none.
func Median(xs []float64) float64 { return Quantile(xs, 0.5) }

// Quantile is the q-quantile of xs by linear interpolation between order
// statistics; NaN for none.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (pos-float64(lo))*(s[hi]-s[lo])
}

// Estimate is the median of repeated trials and its confidence interval.
// It holds the trials' values, so that two runs can be compared later.
type Estimate struct {
	Values []float64 `json:"values"` // one per trial, in trial order
	Median float64   `json:"median"`
	// Lo and Hi bound the interval at Level; both are Median when the
	// trials are too few for one (Bounded false).
	Lo      float64 `json:"lo"`
	Hi      float64 `json:"hi"`
	Bounded bool    `json:"bounded"`
	// Level is the interval's actual confidence, at least Confidence: order
	// statistics give only some levels.
	Level float64 `json:"level,omitempty"`
}

// Estimated summarises xs; NaN values (trials that measured nothing) are
// left out. With no value at all the Estimate is empty (N is 0).
func Estimated(xs []float64) Estimate {
	vals := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			vals = append(vals, x)
		}
	}
	e := Estimate{Values: vals}
	if len(vals) == 0 {
		return e
	}
	s := benchmath.AssumeNothing.Summary(benchmath.NewSample(slices.Clone(vals), thresholds), Confidence)
	e.Median, e.Lo, e.Hi = s.Center, s.Center, s.Center
	if !math.IsInf(s.Lo, 0) && !math.IsInf(s.Hi, 0) {
		e.Lo, e.Hi, e.Bounded, e.Level = s.Lo, s.Hi, true, s.Confidence
	}
	return e
}

// N is how many trials measured something.
func (e Estimate) N() int { return len(e.Values) }

// Scaled is e in other units: every value, the median and the interval's
// bounds multiplied by k, which must be positive. The order statistics an
// Estimate rests on scale alike, so this is what Estimated of the scaled
// values would say, without estimating again.
func (e Estimate) Scaled(k float64) Estimate {
	vals := make([]float64, len(e.Values))
	for i, v := range e.Values {
		vals[i] = v * k
	}
	e.Values, e.Median, e.Lo, e.Hi = vals, e.Median*k, e.Lo*k, e.Hi*k
	return e
}

// Spread is the interval's larger half-width relative to the median, as
// benchstat prints it (±4%); NaN without an interval or for a zero median.
func (e Estimate) Spread() float64 {
	if !e.Bounded || e.Median == 0 {
		return math.NaN()
	}
	return max(e.Hi/e.Median-1, 1-e.Lo/e.Median)
}

// MinTrialsForInterval is how many trials a median needs for an interval
// at Confidence. It depends on Confidence alone, so it is found once.
var MinTrialsForInterval = sync.OnceValue(func() int {
	for n := 2; n <= 50; n++ {
		if Estimated(make([]float64, n)).Bounded {
			return n
		}
	}
	return 51
})

// Comparison is the outcome of the U test of a new sample against an old
// one.
type Comparison struct {
	// P is the test's p-value (1 when the test could not be made).
	P float64 `json:"p"`
	// Ratio is the new median over the old; 0 when the old is 0 or either
	// side measured nothing.
	Ratio float64 `json:"ratio"`
	// Significant says the samples differ at Alpha.
	Significant bool `json:"significant"`
	N1          int  `json:"n_old"`
	N2          int  `json:"n_new"`
}

// Compare tests whether new differs from old, by the Mann-Whitney U test
// (two-sided, exact for small samples, with ties accounted for).
func Compare(old, new Estimate) Comparison {
	c := Comparison{P: 1, N1: old.N(), N2: new.N()}
	if old.N() == 0 || new.N() == 0 {
		return c
	}
	if old.Median != 0 {
		c.Ratio = new.Median / old.Median
	}
	cmp := benchmath.AssumeNothing.Compare(
		benchmath.NewSample(slices.Clone(old.Values), thresholds),
		benchmath.NewSample(slices.Clone(new.Values), thresholds))
	c.P = cmp.P
	c.Significant = cmp.P <= Alpha && old.Median != new.Median
	return c
}

// MinTrialsForSignificance is how many trials each side needs before the
// U test can call any difference significant at Alpha. It depends on Alpha
// alone, so it is found once.
var MinTrialsForSignificance = sync.OnceValue(func() int {
	for n := 1; n <= 50; n++ {
		old, new := make([]float64, n), make([]float64, n)
		for i := range new {
			new[i] = 1
		}
		if Compare(Estimated(old), Estimated(new)).P <= Alpha {
			return n
		}
	}
	return 51
})

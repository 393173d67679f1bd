// Package stats is the little statistics the lab and the bench need to
// report a noisy machine's figures honestly: medians of repeated trials,
// distribution-free confidence intervals for them, and the Mann-Whitney U
// test that calls a difference significant (as golang.org/x/perf's
// benchstat does).
package stats

import (
	"math"
	"slices"
)

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

package stats

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestMedianAndQuantile(t *testing.T) {
	for _, tc := range []struct {
		xs      []float64
		q, want float64
	}{
		{[]float64{3, 1, 2}, 0.5, 2},
		{[]float64{4, 1, 3, 2}, 0.5, 2.5},
		{[]float64{7}, 0.5, 7},
		{[]float64{10, 20, 30, 40, 50}, 0.25, 20},
		{[]float64{10, 20}, 0.9, 19},
	} {
		if got := Quantile(tc.xs, tc.q); !near(got, tc.want) {
			t.Errorf("Quantile(%v, %v) = %v, want %v", tc.xs, tc.q, got, tc.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("the median of nothing is not NaN")
	}
}

// The interval of a median is a pair of order statistics: for n = 6 the
// extremes (confidence 1 - 2/2^6), for n = 10 the second smallest and the
// second largest (1 - 2·11/2^10); below 6 trials there is none at 95 %.
func TestMedianInterval(t *testing.T) {
	for _, tc := range []struct {
		xs             []float64
		median, lo, hi float64
		bounded        bool
		level          float64
	}{
		{[]float64{5, 1, 4, 2, 3}, 3, 3, 3, false, 0},
		{[]float64{6, 1, 5, 2, 4, 3}, 3.5, 1, 6, true, 1 - 2.0/64},
		{[]float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}, 5.5, 2, 9, true, 1 - 22.0/1024},
	} {
		e := Estimated(tc.xs)
		if !near(e.Median, tc.median) || !near(e.Lo, tc.lo) || !near(e.Hi, tc.hi) || e.Bounded != tc.bounded || !near(e.Level, tc.level) {
			t.Errorf("Estimated(%v) = median %v [%v, %v] bounded %v level %v; want %v [%v, %v] %v %v",
				tc.xs, e.Median, e.Lo, e.Hi, e.Bounded, e.Level, tc.median, tc.lo, tc.hi, tc.bounded, tc.level)
		}
	}
	if n := MinTrialsForInterval(); n != 6 {
		t.Errorf("a 95%% interval needs %d trials, want 6", n)
	}
	if e := Estimated([]float64{math.NaN(), 2, math.NaN()}); e.N() != 1 || e.Median != 2 {
		t.Errorf("NaN trials were counted: %+v", e)
	}
	if e := Estimated(nil); e.N() != 0 || e.Median != 0 || e.Bounded {
		t.Errorf("the estimate of nothing is %+v", e)
	}
	if s := Estimated([]float64{90, 100, 100, 100, 100, 105}).Spread(); !near(s, 0.1) {
		t.Errorf("spread %v, want 0.1 (the larger side)", s)
	}
}

// Scaling an estimate changes its units and nothing else: it says what
// estimating the scaled values would.
func TestScaled(t *testing.T) {
	for _, xs := range [][]float64{nil, {0.066}, {0.07, 0.066, 0.071, 0.065, 0.069, 0.068}} {
		scaled := make([]float64, len(xs))
		for i, x := range xs {
			scaled[i] = x * 1000
		}
		got, want := Estimated(xs).Scaled(1000), Estimated(scaled)
		if got.N() != want.N() || !near(got.Median, want.Median) || !near(got.Lo, want.Lo) || !near(got.Hi, want.Hi) ||
			got.Bounded != want.Bounded || got.Level != want.Level {
			t.Errorf("Estimated(%v).Scaled(1000) = %+v, want %+v", xs, got, want)
		}
		for i := range scaled {
			if !near(got.Values[i], scaled[i]) {
				t.Errorf("value %d: %v, want %v", i, got.Values[i], scaled[i])
			}
		}
	}
	e := Estimated([]float64{1, 2, 3})
	e.Scaled(10)
	if e.Values[0] != 1 {
		t.Error("Scaled changed the estimate it was called on")
	}
}

// exactP is the two-sided p-value of the rank-sum test by enumerating
// every way of drawing len(y) of the pooled values: a reference computed
// independently of the library, ties given their mean rank.
func exactP(x, y []float64) float64 {
	pool := append(append([]float64(nil), x...), y...)
	n := len(pool)
	rank := make([]float64, n)
	for i, v := range pool {
		less, equal := 0, 0
		for _, w := range pool {
			switch {
			case w < v:
				less++
			case w == v:
				equal++
			}
		}
		rank[i] = float64(less) + float64(equal+1)/2
	}
	sum := func(idx []int) float64 {
		s := 0.0
		for _, i := range idx {
			s += rank[i]
		}
		return s
	}
	obs := 0.0
	for i := len(x); i < n; i++ {
		obs += rank[i]
	}
	mean := float64(len(y)) * float64(n+1) / 2
	dev := math.Abs(obs - mean)
	var total, extreme int
	idx := make([]int, len(y))
	var walk func(start, k int)
	walk = func(start, k int) {
		if k == len(y) {
			total++
			if math.Abs(sum(idx)-mean) >= dev-1e-9 {
				extreme++
			}
			return
		}
		for i := start; i <= n-(len(y)-k); i++ {
			idx[k] = i
			walk(i+1, k+1)
		}
	}
	walk(0, 0)
	return float64(extreme) / float64(total)
}

// The U test against published values and against the enumeration above.
func TestCompare(t *testing.T) {
	// R's example for wilcox.test (?wilcox.test): W = 35, one-sided p =
	// 0.1272, so two-sided 0.2544.
	rx := []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46}
	ry := []float64{1.15, 0.88, 0.90, 0.74, 1.21}
	for _, tc := range []struct {
		old, new []float64
		p        float64 // 0: take exactP's
		sig      bool
	}{
		{[]float64{1, 2, 3}, []float64{4, 5, 6}, 0.1, false},           // 2/C(6,3)
		{[]float64{1, 2, 3, 4}, []float64{5, 6, 7, 8}, 2.0 / 70, true}, // 2/C(8,4)
		{[]float64{1, 2, 3, 4, 5}, []float64{6, 7, 8, 9, 10}, 2.0 / 252, true},
		{rx, ry, 0.2544, false},
		{[]float64{10, 12, 11, 13, 9, 14}, []float64{11.5, 12.5, 10.5, 13.5, 9.5, 8}, 0, false},
		{[]float64{100, 102, 98, 101, 99, 103}, []float64{90, 91, 89, 92, 93, 88}, 0, true},
	} {
		want := tc.p
		if want == 0 {
			want = exactP(tc.old, tc.new)
		}
		c := Compare(Estimated(tc.old), Estimated(tc.new))
		tol := 1e-6
		if tc.p == 0.2544 {
			tol = 5e-5 // R prints four digits
		}
		if math.Abs(c.P-want) > tol || c.Significant != tc.sig {
			t.Errorf("Compare(%v, %v): p %v significant %v, want p %v significant %v", tc.old, tc.new, c.P, c.Significant, want, tc.sig)
		}
		if got := exactP(tc.old, tc.new); math.Abs(got-want) > tol {
			t.Errorf("the enumeration gives %v for %v vs %v, the reference %v", got, tc.old, tc.new, want)
		}
	}
	if n := MinTrialsForSignificance(); n != 4 {
		t.Errorf("significance needs %d trials a side, want 4", n)
	}
	if c := Compare(Estimated([]float64{2, 2, 2, 2}), Estimated([]float64{4, 4, 4, 4})); !c.Significant || c.Ratio != 2 {
		t.Errorf("constant samples 2 and 4: %+v, want significant, ratio 2", c)
	}
	if c := Compare(Estimated(nil), Estimated([]float64{1, 2})); c.Significant || c.P != 1 {
		t.Errorf("against nothing: %+v", c)
	}
}

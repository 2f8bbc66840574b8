// Package stats is lemctl's inference on measured figures: it compares two samples (the per-cycle
// or per-repeat values of a figure in A and in B) with Welch's t interval for the difference of
// means, a log-ratio interval for the ratio of means, a seeded percentile bootstrap, Hedges' g and
// the smallest difference the samples could have detected; it also finds Pareto sets. The
// distributions and moments come from gonum (stat, distuv); nothing here is fitted by hand.
//
// It is pure computation: it must never read files, print, or draw randomness that a seed does
// not fix (the same inputs always give the same outputs). docs/compare.md gives every formula.
package stats

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Defaults of Compare.
const (
	// Alpha is the significance level: intervals are 1 − Alpha = 95 %.
	Alpha = 0.05
	// Power is the power at which the minimum detectable difference is computed.
	Power = 0.80
	// Resamples is the number of bootstrap resamples.
	Resamples = 10000
	// Seed seeds the bootstrap: the same samples always give the same interval.
	Seed = 1
	// SmallN is the sample size below which a comparison also requires the bootstrap interval
	// to exclude zero (Welch's interval leans on normality that a few values cannot show).
	SmallN = 8
	// SkewLimit is the absolute sample skewness above which a sample counts as skewed.
	SkewLimit = 1.0
	// RoundingRel is the rounding of a figure, relative to its magnitude: two values that differ
	// by no more than RoundingRel × the larger magnitude could come from one truth computed in two
	// orders (float64 arithmetic is exact to about 1e-16; figures pass through a few divisions
	// and sums, and JSON), so they cannot be told apart. The figures carry no measurement
	// resolution of their own, so this is the resolution Welch's test uses (see RoundingOf).
	RoundingRel = 1e-9
)

// RoundingOf is the difference that float rounding alone can make between figures of the
// magnitude of a and b: RoundingRel × the largest |value| in either.
func RoundingOf(a, b []float64) float64 {
	m := 0.0
	for _, x := range [][]float64{a, b} {
		if len(x) > 0 {
			m = math.Max(m, math.Max(math.Abs(floats.Max(x)), math.Abs(floats.Min(x))))
		}
	}
	return RoundingRel * m
}

// constantWithin reports whether every value of x lies within tol of every other (the sample
// has no variance beyond rounding).
func constantWithin(x []float64, tol float64) bool {
	return floats.Max(x)-floats.Min(x) <= tol
}

// ErrTooFew is returned when a sample has fewer than two values: no spread, so no interval.
var ErrTooFew = errors.New("fewer than two values: no interval can be given")

// Interval is a two-sided confidence interval.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Contains reports whether x lies within the closed interval.
func (iv Interval) Contains(x float64) bool { return iv.Low <= x && x <= iv.High }

// HalfWidth is half the interval's width.
func (iv Interval) HalfWidth() float64 { return (iv.High - iv.Low) / 2 }

// Welch is Welch's unequal-variances t test of mean(B) − mean(A).
type Welch struct {
	MeanA, MeanB float64
	// Diff is mean(B) − mean(A); SE its standard error √(s²A/nA + s²B/nB).
	Diff, SE float64
	// DF is the Welch–Satterthwaite degrees of freedom; T = Diff/SE; P the two-sided p-value.
	DF, T, P float64
	CI       Interval
	// Constant: both samples are constant within rounding (RoundingOf): no variance, so Welch's
	// t has no spread to divide by and the difference is known exactly (to rounding).
	Constant bool
	// WithinRounding: Constant, and the means differ by no more than rounding — no difference
	// can be told: T = 0, P = 1 and CI is Diff ± rounding (it holds 0).
	WithinRounding bool
	// Rounding is the bound those two use: RoundingOf(a, b).
	Rounding float64
}

// WelchTest is Welch's t test and the 1 − alpha interval of mean(b) − mean(a) (R's
// t.test(b, a), var.equal = FALSE). Both samples need two values or more.
func WelchTest(a, b []float64, alpha float64) (Welch, error) {
	if len(a) < 2 || len(b) < 2 {
		return Welch{}, ErrTooFew
	}
	ma, va := stat.MeanVariance(a, nil)
	mb, vb := stat.MeanVariance(b, nil)
	na, nb := float64(len(a)), float64(len(b))
	qa, qb := va/na, vb/nb
	w := Welch{MeanA: ma, MeanB: mb, Diff: mb - ma, SE: math.Sqrt(qa + qb)}
	tol := RoundingOf(a, b)
	w.Rounding = tol
	if w.SE == 0 || constantWithin(a, tol) && constantWithin(b, tol) {
		// Two constant samples (a variance of rounding only, e.g. 1e-33 from a mean that
		// is not exactly representable, counts as none): the difference is known exactly, to
		// rounding. A difference no larger than rounding is none; a larger one is certain.
		w.Constant, w.SE, w.DF = true, 0, na+nb-2
		if math.Abs(w.Diff) <= tol {
			w.WithinRounding, w.P = true, 1
			w.CI = Interval{w.Diff - tol, w.Diff + tol}
			return w, nil
		}
		w.CI = Interval{w.Diff, w.Diff}
		w.T = math.Copysign(math.Inf(1), w.Diff)
		return w, nil
	}
	w.DF = (qa + qb) * (qa + qb) / (qa*qa/(na-1) + qb*qb/(nb-1))
	w.T = w.Diff / w.SE
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: w.DF}
	w.P = 2 * t.Survival(math.Abs(w.T))
	q := t.Quantile(1 - alpha/2)
	w.CI = Interval{w.Diff - q*w.SE, w.Diff + q*w.SE}
	return w, nil
}

// Ratio is mean(B) ÷ mean(A) with its interval by the delta method on the log ratio.
type Ratio struct {
	Ratio float64
	// SELog is the standard error of log(mean B / mean A); DF its Welch–Satterthwaite degrees of
	// freedom.
	SELog, DF float64
	CI        Interval
}

// ErrNotPositive is returned for a ratio whose means are not both positive.
var ErrNotPositive = errors.New("the ratio needs both means positive")

// RatioTest is the 1 − alpha interval of mean(b)/mean(a): log(mB/mA) ± t·SE, with SE² =
// s²A/(nA·mA²) + s²B/(nB·mB²) (the delta method) and t on the Welch–Satterthwaite degrees of
// freedom of those two terms, transformed back by exp. The interval is never unbounded (unlike
// Fieller's) and is symmetric on the log scale.
func RatioTest(a, b []float64, alpha float64) (Ratio, error) {
	if len(a) < 2 || len(b) < 2 {
		return Ratio{}, ErrTooFew
	}
	ma, va := stat.MeanVariance(a, nil)
	mb, vb := stat.MeanVariance(b, nil)
	if !(ma > 0 && mb > 0) {
		return Ratio{}, ErrNotPositive
	}
	na, nb := float64(len(a)), float64(len(b))
	qa, qb := va/(na*ma*ma), vb/(nb*mb*mb)
	r := Ratio{Ratio: mb / ma, SELog: math.Sqrt(qa + qb)}
	if r.SELog == 0 {
		r.DF = na + nb - 2
		r.CI = Interval{r.Ratio, r.Ratio}
		return r, nil
	}
	r.DF = (qa + qb) * (qa + qb) / (qa*qa/(na-1) + qb*qb/(nb-1))
	q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: r.DF}.Quantile(1 - alpha/2)
	l := math.Log(r.Ratio)
	r.CI = Interval{math.Exp(l - q*r.SELog), math.Exp(l + q*r.SELog)}
	return r, nil
}

// BootstrapDiff is the percentile bootstrap 1 − alpha interval of mean(b) − mean(a): each of
// resamples draws nA values from a and nB from b with replacement, and the interval is the
// alpha/2 and 1 − alpha/2 quantiles (type 7, as R's quantile) of the resampled differences. The
// generator is PCG seeded with seed, so the interval is the same on every call.
func BootstrapDiff(a, b []float64, alpha float64, resamples int, seed uint64) (Interval, error) {
	if len(a) < 2 || len(b) < 2 {
		return Interval{}, ErrTooFew
	}
	if resamples < 2 {
		return Interval{}, errors.New("bootstrap: need at least 2 resamples")
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	diffs := make([]float64, resamples)
	for i := range diffs {
		diffs[i] = resampleMean(rng, b) - resampleMean(rng, a)
	}
	slices.Sort(diffs)
	return Interval{quantile7(diffs, alpha/2), quantile7(diffs, 1-alpha/2)}, nil
}

// BootstrapMean is the percentile bootstrap 1 − alpha interval of mean(x), as BootstrapDiff.
func BootstrapMean(x []float64, alpha float64, resamples int, seed uint64) (Interval, error) {
	if len(x) < 2 {
		return Interval{}, ErrTooFew
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	means := make([]float64, resamples)
	for i := range means {
		means[i] = resampleMean(rng, x)
	}
	slices.Sort(means)
	return Interval{quantile7(means, alpha/2), quantile7(means, 1-alpha/2)}, nil
}

func resampleMean(rng *rand.Rand, x []float64) float64 {
	var sum float64
	for range x {
		sum += x[rng.IntN(len(x))]
	}
	return sum / float64(len(x))
}

// quantile7 is the p-quantile of sorted values by Hyndman & Fan's type 7 (R's default).
func quantile7(sorted []float64, p float64) float64 {
	h := float64(len(sorted)-1) * p
	lo := int(math.Floor(h))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// HedgesG is the standardised difference (mean(b) − mean(a)) / s_pooled, with s_pooled² =
// ((nA−1)s²A + (nB−1)s²B)/(nA+nB−2), times the exact small-sample correction
// J(ν) = Γ(ν/2) / (√(ν/2)·Γ((ν−1)/2)), ν = nA+nB−2 (Hedges 1981). NaN when both samples are
// constant (no pooled spread).
func HedgesG(a, b []float64) (float64, error) {
	if len(a) < 2 || len(b) < 2 {
		return 0, ErrTooFew
	}
	ma, va := stat.MeanVariance(a, nil)
	mb, vb := stat.MeanVariance(b, nil)
	na, nb := float64(len(a)), float64(len(b))
	nu := na + nb - 2
	sp := math.Sqrt(((na-1)*va + (nb-1)*vb) / nu)
	if sp == 0 {
		return math.NaN(), nil
	}
	return (mb - ma) / sp * HedgesJ(nu), nil
}

// HedgesJ is Hedges' exact correction factor for ν degrees of freedom.
func HedgesJ(nu float64) float64 {
	l1, _ := math.Lgamma(nu / 2)
	l2, _ := math.Lgamma((nu - 1) / 2)
	return math.Exp(l1-l2) / math.Sqrt(nu/2)
}

// MinDetectable is the smallest |mean(B) − mean(A)| a two-sided Welch test at level alpha would
// detect with the given power, for samples with the spreads and sizes of a and b:
// (t_{1−α/2,ν} + t_{power,ν}) · SE, ν and SE as in WelchTest (the usual normal-approximation
// power formula with t quantiles in place of z).
func MinDetectable(a, b []float64, alpha, power float64) (float64, error) {
	w, err := WelchTest(a, b, alpha)
	if err != nil {
		return 0, err
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: w.DF}
	return (t.Quantile(1-alpha/2) + t.Quantile(power)) * w.SE, nil
}

// Skewed reports whether x's sample skewness (gonum stat.Skew) exceeds SkewLimit in absolute
// value. Fewer than three values never count as skewed.
func Skewed(x []float64) bool {
	if len(x) < 3 {
		return false
	}
	s := stat.Skew(x, nil)
	return !math.IsNaN(s) && math.Abs(s) > SkewLimit
}

// MeanCI is the 1 − alpha Student t interval of mean(x) (n − 1 degrees of freedom).
func MeanCI(x []float64, alpha float64) (Interval, error) {
	if len(x) < 2 {
		return Interval{}, ErrTooFew
	}
	m, sd := stat.MeanStdDev(x, nil)
	n := float64(len(x))
	q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}.Quantile(1 - alpha/2)
	h := q * sd / math.Sqrt(n)
	return Interval{m - h, m + h}, nil
}

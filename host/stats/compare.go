package stats

import (
	"math"

	"gonum.org/v1/gonum/stat"
)

// Interval methods of a Comparison.
const (
	// MethodWelch: the interval is Welch's.
	MethodWelch = "welch"
	// MethodWelchBootstrap: the samples are small or skewed, so the interval is the hull of
	// Welch's and the bootstrap's (the difference counts only when both exclude zero).
	MethodWelchBootstrap = "welch+bootstrap"
)

// Notes of a Comparison of two constant samples.
const (
	// NoteWithinRounding: both samples are constant and their means differ by no more than
	// rounding (RoundingOf): not significant.
	NoteWithinRounding = "no variance; the difference is within rounding"
	// NoteExact: both samples are constant and differ by more than rounding: the difference is
	// known exactly, so it is significant however small n is.
	NoteExact = "no variance; the difference is exact"
)

// Comparison is everything Compare says about B against A for one figure.
type Comparison struct {
	NA, NB       int
	MeanA, MeanB float64
	// StdA and StdB are the sample standard deviations (n − 1).
	StdA, StdB float64
	Welch      Welch
	// Bootstrap is the percentile bootstrap interval of the difference.
	Bootstrap Interval
	// Ratio is mean(B)/mean(A) and its interval; nil when a mean is not positive.
	Ratio *Ratio
	// HedgesG is the bias-corrected standardised difference; NaN when both samples are constant.
	HedgesG float64
	// Method says which interval CI is: MethodWelch, or MethodWelchBootstrap when a sample has
	// fewer than SmallN values or is skewed (Skewed).
	Method string
	// CI is the interval of mean(B) − mean(A) the verdict rests on.
	CI Interval
	// Significant: CI excludes zero (never when Welch.WithinRounding).
	Significant bool
	// Note says why the verdict is what it is when the interval alone does not: "no variance;
	// the difference is within rounding" or "no variance; the difference is exact". Empty
	// otherwise.
	Note string
	// MinDetectable is the smallest |difference| these samples detect at Alpha with Power.
	MinDetectable float64
}

// Compare compares b with a at level Alpha: both samples need two values or more (ErrTooFew).
func Compare(a, b []float64) (*Comparison, error) {
	w, err := WelchTest(a, b, Alpha)
	if err != nil {
		return nil, err
	}
	c := &Comparison{NA: len(a), NB: len(b), MeanA: w.MeanA, MeanB: w.MeanB, Welch: w, Method: MethodWelch, CI: w.CI}
	c.StdA, c.StdB = stat.StdDev(a, nil), stat.StdDev(b, nil)
	if c.Bootstrap, err = BootstrapDiff(a, b, Alpha, Resamples, Seed); err != nil {
		return nil, err
	}
	if r, err := RatioTest(a, b, Alpha); err == nil {
		c.Ratio = &r
	}
	if c.HedgesG, err = HedgesG(a, b); err != nil {
		return nil, err
	}
	if c.MinDetectable, err = MinDetectable(a, b, Alpha, Power); err != nil {
		return nil, err
	}
	if len(a) < SmallN || len(b) < SmallN || Skewed(a) || Skewed(b) {
		c.Method = MethodWelchBootstrap
		c.CI = Interval{math.Min(w.CI.Low, c.Bootstrap.Low), math.Max(w.CI.High, c.Bootstrap.High)}
	}
	c.Significant = !c.CI.Contains(0)
	if w.Constant {
		// No spread on either side: Hedges' g has nothing to standardise by, and the bootstrap
		// only repeats the two constants.
		c.HedgesG = math.NaN()
		c.Note = NoteExact
		if w.WithinRounding {
			c.Significant, c.Note = false, NoteWithinRounding
		}
	}
	return c, nil
}

package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lemctl/lemctl/host/results"
)

// R's `sleep` data set (Cushny & Peebles): extra hours of sleep with drug 1 and drug 2.
var (
	sleep1 = []float64{0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0}
	sleep2 = []float64{1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4}
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g (±%g)", what, got, want, tol)
	}
}

// TestWelchMatchesR checks the Welch test against R's published output for
// t.test(extra ~ group, data = sleep): t = -1.8608, df = 17.776, p-value = 0.07939,
// 95 percent confidence interval -3.3654832 0.2054832, means 0.75 and 2.33. R's difference is
// group 1 − group 2, so A is group 2 and B group 1 here.
func TestWelchMatchesR(t *testing.T) {
	w, err := WelchTest(sleep2, sleep1, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "mean A", w.MeanA, 2.33, 1e-12)
	near(t, "mean B", w.MeanB, 0.75, 1e-12)
	near(t, "t", w.T, -1.8608, 1e-4)
	near(t, "df", w.DF, 17.776, 1e-3)
	near(t, "p", w.P, 0.07939, 1e-5)
	near(t, "ci low", w.CI.Low, -3.3654832, 1e-6)
	near(t, "ci high", w.CI.High, 0.2054832, 1e-6)
	// The other way round is the mirror image.
	r, _ := WelchTest(sleep1, sleep2, 0.05)
	near(t, "mirrored low", r.CI.Low, -0.2054832, 1e-6)
	near(t, "mirrored t", r.T, 1.8608, 1e-4)
}

// TestMeanCIMatchesR: t.test(sleep$extra[1:10]) gives mean 0.75 and the 95 percent confidence
// interval -0.5297804 2.0297804 (t = 1.3257, df = 9).
func TestMeanCIMatchesR(t *testing.T) {
	iv, err := MeanCI(sleep1, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "low", iv.Low, -0.5297804, 1e-6)
	near(t, "high", iv.High, 2.0297804, 1e-6)
	// The same interval as results.NewStats, whose t quantile is lemctl's own bisection.
	st := results.NewStats(sleep1)
	near(t, "stats low", *st.CI95Low, iv.Low, 1e-8)
}

func TestTooFew(t *testing.T) {
	if _, err := WelchTest([]float64{1}, sleep1, 0.05); err != ErrTooFew {
		t.Errorf("WelchTest with one value: err = %v, want ErrTooFew", err)
	}
	if _, err := Compare(sleep1, []float64{2}); err != ErrTooFew {
		t.Errorf("Compare with one value: err = %v, want ErrTooFew", err)
	}
	if _, err := BootstrapDiff(nil, sleep1, 0.05, 100, 1); err != ErrTooFew {
		t.Errorf("BootstrapDiff with no value: err = %v", err)
	}
}

// TestHedgesG: for the sleep data s²₁ = 3.2005556, s²₂ = 4.009 (R's var), so s_pooled =
// 1.8986252, Cohen's d = 1.58/1.8986252 = 0.8321811, and J(18) = Γ(9)/(3·Γ(8.5)) = 0.9576464.
func TestHedgesG(t *testing.T) {
	near(t, "J(18)", HedgesJ(18), 0.957646427, 1e-8)
	near(t, "J(18) vs 1 − 3/(4ν−1)", HedgesJ(18), 1-3.0/(4*18-1), 2e-4)
	g, err := HedgesG(sleep1, sleep2)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "g", g, 0.8321811*0.9576464, 1e-6)
	g2, _ := HedgesG(sleep2, sleep1)
	near(t, "g reversed", g2, -g, 1e-12)
}

// TestRatio checks the log-ratio interval against the formula worked with lemctl's own t
// quantile (results.TQuantile), on data whose ratio of means is known.
func TestRatio(t *testing.T) {
	a := []float64{10, 11, 9, 10.5, 9.5}
	b := []float64{9, 9.9, 8.1, 9.45, 8.55} // 0.9 × a
	r, err := RatioTest(a, b, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "ratio", r.Ratio, 0.9, 1e-12)
	// Each sample has CV s/m = √0.625/10; SE² = 2·CV²/5; ν = 8 (equal terms).
	cv := math.Sqrt(0.625) / 10
	se := math.Sqrt(2 * cv * cv / 5)
	near(t, "se log", r.SELog, se, 1e-12)
	near(t, "df", r.DF, 8, 1e-9)
	q := results.TQuantile(0.975, 8)
	near(t, "low", r.CI.Low, 0.9*math.Exp(-q*se), 1e-8)
	near(t, "high", r.CI.High, 0.9*math.Exp(q*se), 1e-8)
	if _, err := RatioTest([]float64{-1, 1}, a, 0.05); err != ErrNotPositive {
		t.Errorf("ratio with mean 0: err = %v", err)
	}
}

// TestMinDetectable: (t_{.975,ν} + t_{.80,ν})·SE with the sleep data's Welch ν and SE.
func TestMinDetectable(t *testing.T) {
	w, _ := WelchTest(sleep1, sleep2, 0.05)
	m, err := MinDetectable(sleep1, sleep2, 0.05, 0.80)
	if err != nil {
		t.Fatal(err)
	}
	want := (results.TQuantile(0.975, w.DF) + results.TQuantile(0.80, w.DF)) * w.SE
	near(t, "mdd", m, want, 1e-8)
	// The observed 1.58 h is below it: the data could not reliably detect a difference that size.
	if !(m > 1.58) {
		t.Errorf("mdd %g should exceed the observed difference 1.58", m)
	}
}

func TestBootstrapDeterministic(t *testing.T) {
	x, _ := BootstrapDiff(sleep1, sleep2, 0.05, 2000, 7)
	y, _ := BootstrapDiff(sleep1, sleep2, 0.05, 2000, 7)
	if x != y {
		t.Errorf("same seed, different intervals: %v and %v", x, y)
	}
	z, _ := BootstrapDiff(sleep1, sleep2, 0.05, 2000, 8)
	if x == z {
		t.Errorf("seeds 7 and 8 gave the same interval %v", x)
	}
	// The percentile interval lies around the observed difference 1.58 and, for n = 10 per group,
	// is a little narrower than Welch's (the bootstrap ignores the t quantile's widening).
	if !x.Contains(1.58) || x.Low < -0.5 || x.High > 3.6 {
		t.Errorf("bootstrap interval %v: want it around 1.58 within Welch's [-0.21, 3.37] give or take", x)
	}
}

// TestBootstrapCoverage: over 200 seeded normal samples (n = 30 each, true difference 1), the 95 %
// percentile interval covers the true difference in at least 90 % of them, and so does Welch's.
func TestBootstrapCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 43))
	const trials = 200
	var boot, welch, bootMean int
	for i := range trials {
		a, b := make([]float64, 30), make([]float64, 30)
		for k := range a {
			a[k] = 5 + rng.NormFloat64()
			b[k] = 6 + 2*rng.NormFloat64()
		}
		iv, err := BootstrapDiff(a, b, 0.05, 1000, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if iv.Contains(1) {
			boot++
		}
		if w, _ := WelchTest(a, b, 0.05); w.CI.Contains(1) {
			welch++
		}
		if m, _ := BootstrapMean(b, 0.05, 1000, uint64(i)); m.Contains(6) {
			bootMean++
		}
	}
	for name, n := range map[string]int{"bootstrap diff": boot, "welch": welch, "bootstrap mean": bootMean} {
		if n < trials*90/100 {
			t.Errorf("%s covered the truth in %d of %d trials, want ≥ 90 %%", name, n, trials)
		}
		if n == trials {
			t.Errorf("%s covered the truth in every trial: a 95 %% interval should miss sometimes", name)
		}
	}
}

func TestCompareKnownAndNull(t *testing.T) {
	a := []float64{1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99}
	lower := []float64{0.90, 0.91, 0.89, 0.92, 0.88, 0.90, 0.91, 0.89} // 10 % lower
	same := []float64{1.01, 0.99, 1.00, 0.98, 1.02, 1.00, 0.99, 1.01}  // a, reordered
	c, err := Compare(a, lower)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Significant || c.Method != MethodWelch {
		t.Errorf("10 %% lower: significant=%v method=%s, want significant by welch", c.Significant, c.Method)
	}
	near(t, "diff", c.Welch.Diff, -0.1, 1e-12)
	if c.Ratio == nil || !c.Ratio.CI.Contains(0.9) || c.Ratio.CI.Contains(1) {
		t.Errorf("ratio interval %+v should contain 0.9 and exclude 1", c.Ratio)
	}
	if c.HedgesG > -2 {
		t.Errorf("g = %g: want a large negative effect", c.HedgesG)
	}
	n, err := Compare(a, same)
	if err != nil {
		t.Fatal(err)
	}
	if n.Significant {
		t.Errorf("equal samples found significant: %+v", n)
	}
	near(t, "null diff", n.Welch.Diff, 0, 1e-12)
	if !(n.MinDetectable > 0 && n.MinDetectable < 0.05) {
		t.Errorf("mdd %g: want a small positive difference for tight samples", n.MinDetectable)
	}
	// Three values per side: the hull of Welch's and the bootstrap's interval.
	s, _ := Compare(a[:3], lower[:3])
	if s.Method != MethodWelchBootstrap || s.CI.Low > s.Welch.CI.Low || s.CI.Low > s.Bootstrap.Low {
		t.Errorf("small samples: method %s, ci %v, welch %v, bootstrap %v", s.Method, s.CI, s.Welch.CI, s.Bootstrap)
	}
}

func TestSkewed(t *testing.T) {
	if Skewed([]float64{1, 2, 3, 4, 5}) {
		t.Error("a symmetric sample counts as skewed")
	}
	if !Skewed([]float64{1, 1, 1, 1, 1, 1, 1, 10}) {
		t.Error("one far outlier does not count as skewed")
	}
}

func TestConstantSamples(t *testing.T) {
	w, err := WelchTest([]float64{2, 2}, []float64{3, 3}, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	if w.CI != (Interval{1, 1}) || w.P != 0 {
		t.Errorf("constant samples: %+v", w)
	}
}

// TestConstantSamplesWithinRounding: two constant samples of one truth computed in two orders
// (0.1 + 0.2 and 0.3 differ in the last bit) have no variance and differ by float rounding only:
// not significant, P = 1, an interval that holds 0, and a note that says why — where Welch's t
// alone would be infinite and call them significant. The same holds at any magnitude (the bound
// is relative) and for a variance of rounding only.
func TestConstantSamplesWithinRounding(t *testing.T) {
	p, q := 0.1, 0.2
	x := p + q // 0.30000000000000004 at run time (constants would be exact)
	if x == 0.3 {
		t.Fatal("test arithmetic: 0.1 + 0.2 is exactly 0.3 here")
	}
	cases := []struct {
		name string
		a, b []float64
	}{
		{"last bit", []float64{0.3, 0.3, 0.3}, []float64{x, x, x}},
		{"160 W, relative 1e-12", []float64{160, 160, 160}, []float64{160 * (1 + 1e-12), 160 * (1 + 1e-12), 160 * (1 + 1e-12)}},
		{"rounding variance", []float64{40, 40 * (1 + 1e-15), 40}, []float64{40 * (1 + 2e-15), 40 * (1 + 2e-15), 40 * (1 + 3e-15)}},
		{"n ≥ 8 (Welch alone)", slices.Repeat([]float64{0.3}, 8), slices.Repeat([]float64{x}, 8)},
	}
	for _, c := range cases {
		w, err := WelchTest(c.a, c.b, Alpha)
		if err != nil {
			t.Fatal(err)
		}
		if !w.Constant || !w.WithinRounding || w.P != 1 || w.T != 0 || !w.CI.Contains(0) || math.IsInf(w.T, 0) {
			t.Errorf("%s: welch %+v, want constant within rounding, t 0, p 1, an interval holding 0", c.name, w)
		}
		cmp, err := Compare(c.a, c.b)
		if err != nil {
			t.Fatal(err)
		}
		if cmp.Significant || cmp.CI.Contains(0) == false || cmp.Note != NoteWithinRounding || !math.IsNaN(cmp.HedgesG) {
			t.Errorf("%s: significant=%v ci=%v note=%q g=%g, want not significant with the note %q", c.name, cmp.Significant, cmp.CI, cmp.Note, cmp.HedgesG, NoteWithinRounding)
		}
	}
}

// TestConstantSamplesRealDifference: constant samples that differ by more than rounding — even
// by only 1e-6 of their magnitude — differ exactly: significant, with an infinite t.
func TestConstantSamplesRealDifference(t *testing.T) {
	for _, d := range []float64{1e-6, 1e-3, 1} {
		a, b := []float64{160, 160, 160}, []float64{160 + d*160, 160 + d*160, 160 + d*160}
		cmp, err := Compare(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Significant || cmp.Welch.WithinRounding || !cmp.Welch.Constant || !math.IsInf(cmp.Welch.T, 1) || cmp.Note != NoteExact {
			t.Errorf("relative difference %g: significant=%v welch %+v note %q, want an exact, significant difference", d, cmp.Significant, cmp.Welch, cmp.Note)
		}
	}
	// Just above the bound: a difference of 10× rounding is real.
	a := []float64{1, 1, 1}
	b := []float64{1 + 10*RoundingRel, 1 + 10*RoundingRel, 1 + 10*RoundingRel}
	if w, _ := WelchTest(a, b, Alpha); w.WithinRounding || w.P != 0 {
		t.Errorf("10× rounding: %+v, want a real difference", w)
	}
	// A sample with real spread is Welch's ordinary test, whatever the other.
	if w, _ := WelchTest([]float64{1, 1, 1}, []float64{1, 1.1, 0.9}, Alpha); w.Constant || w.WithinRounding {
		t.Errorf("one sample with spread: %+v, want the ordinary test", w)
	}
}

func TestParetoMin(t *testing.T) {
	nan := math.NaN()
	objs := [][]float64{
		{1, 5},   // 0: best x
		{2, 2},   // 1: trade-off
		{3, 1},   // 2: best y
		{3, 3},   // 3: dominated by 1
		{2, 2},   // 4: equal to 1, kept
		{nan, 0}, // 5: unknown, never on the set
		{1, 6},   // 6: dominated by 0 (same x, worse y)
	}
	got := ParetoMin(objs)
	want := []int{0, 1, 2, 4}
	if len(got) != len(want) {
		t.Fatalf("pareto = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pareto = %v, want %v", got, want)
		}
	}
}

// TestBootstrapMatchesTheExactBootstrapDistribution: for samples this small every resample can be
// enumerated (3³ × 3³ = 729 equally likely pairs), so the bootstrap distribution of the difference
// of means is known exactly; the Monte Carlo interval must land on its 2.5 % and 97.5 % quantiles
// (the atoms are 1/3 apart: within half of that).
func TestBootstrapMatchesTheExactBootstrapDistribution(t *testing.T) {
	a := []float64{1, 2, 3}
	b := []float64{2, 5, 9}
	var diffs []float64
	for i := range 27 {
		for j := range 27 {
			ma := (a[i%3] + a[i/3%3] + a[i/9]) / 3
			mb := (b[j%3] + b[j/3%3] + b[j/9]) / 3
			diffs = append(diffs, mb-ma)
		}
	}
	slices.Sort(diffs)
	exact := Interval{quantile7(diffs, 0.025), quantile7(diffs, 0.975)}
	got, err := BootstrapDiff(a, b, 0.05, 20000, 3)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "low", got.Low, exact.Low, 1.0/6)
	near(t, "high", got.High, exact.High, 1.0/6)
}

package results

import (
	"math"
	"testing"
)

func TestPercentileType7(t *testing.T) {
	// Values checked against numpy.percentile (default linear method).
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		p, want float64
	}{
		{0, 1}, {0.5, 5.5}, {0.9, 9.1}, {0.95, 9.55}, {0.99, 9.91}, {1, 10}, {0.25, 3.25},
	}
	for _, tc := range tests {
		if got := Percentile(x, tc.p); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Percentile(1..10, %g) = %g, want %g", tc.p, got, tc.want)
		}
	}
	if got := Percentile([]float64{7}, 0.99); got != 7 {
		t.Errorf("one value: %g", got)
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{4, 1, 3, 2})
	if s.Count != 4 || *s.Min != 1 || *s.Max != 4 || *s.Mean != 2.5 || *s.P50 != 2.5 {
		t.Fatalf("summary = %+v", s)
	}
	if *s.P90 != 3.7 && math.Abs(*s.P90-3.7) > 1e-12 {
		t.Errorf("p90 = %g, want 3.7", *s.P90)
	}
	empty := Summarize(nil)
	if empty.Count != 0 || empty.Mean != nil || empty.P99 != nil {
		t.Errorf("empty summary must be null figures: %+v", empty)
	}
}

func TestLatencySamples(t *testing.T) {
	reqs := []Request{
		{ID: "a", StartMonoNS: 0, TokenMonoNS: []int64{10e6, 12e6, 15e6}},
		{ID: "b", StartMonoNS: 1e6, TokenMonoNS: []int64{21e6}},
		{ID: "c", StartMonoNS: 1e6}, // no tokens: contributes nothing
	}
	var l LatencySamples
	l.Add(reqs)
	want := LatencySamples{TTFT: []float64{10, 20}, ITL: []float64{2, 3}, E2E: []float64{15, 20}}
	for name, pair := range map[string][2][]float64{"ttft": {l.TTFT, want.TTFT}, "itl": {l.ITL, want.ITL}, "e2e": {l.E2E, want.E2E}} {
		if len(pair[0]) != len(pair[1]) {
			t.Fatalf("%s = %v, want %v", name, pair[0], pair[1])
		}
		for i := range pair[0] {
			if pair[0][i] != pair[1][i] {
				t.Errorf("%s = %v, want %v", name, pair[0], pair[1])
			}
		}
	}
}

func TestTQuantile(t *testing.T) {
	// Two-sided 95 % critical values from standard t tables.
	tests := []struct {
		df, want float64
	}{
		{1, 12.7062}, {2, 4.3027}, {3, 3.1824}, {4, 2.7764}, {9, 2.2622}, {29, 2.0452}, {120, 1.9799}, {1e7, 1.9600},
	}
	for _, tc := range tests {
		if got := TQuantile(0.975, tc.df); math.Abs(got-tc.want) > 5e-4 {
			t.Errorf("TQuantile(0.975, %g) = %.5f, want %.4f", tc.df, got, tc.want)
		}
	}
	if got := TQuantile(0.025, 9); math.Abs(got+2.2622) > 5e-4 {
		t.Errorf("lower tail = %g", got)
	}
}

func TestNewStats(t *testing.T) {
	tests := []struct {
		name   string
		values []float64
		mean   *float64
		std    *float64
		half   *float64
		cv     *float64
	}{
		{name: "empty"},
		{name: "one value has no spread", values: []float64{3}, mean: Float(3)},
		// mean 10, sample std 2, t(0.975, 2) = 4.3027, half = 4.3027·2/√3.
		{name: "three", values: []float64{8, 10, 12}, mean: Float(10), std: Float(2), half: Float(4.302653 * 2 / math.Sqrt(3)), cv: Float(0.2)},
		{name: "zero mean has no cv", values: []float64{-1, 1}, mean: Float(0), std: Float(math.Sqrt2), half: Float(12.706205 * math.Sqrt2 / math.Sqrt2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := NewStats(tc.values)
			check := func(field string, got, want *float64) {
				t.Helper()
				if (got == nil) != (want == nil) {
					t.Fatalf("%s = %v, want %v", field, got, want)
				}
				if got != nil && math.Abs(*got-*want) > 1e-4 {
					t.Errorf("%s = %g, want %g", field, *got, *want)
				}
			}
			check("mean", st.Mean, tc.mean)
			check("std", st.Std, tc.std)
			check("ci95 half", st.CI95Half, tc.half)
			check("cv", st.CV, tc.cv)
			if st.N != len(tc.values) {
				t.Errorf("n = %d", st.N)
			}
		})
	}
}

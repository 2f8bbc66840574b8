package reportcmd

import (
	"testing"

	"github.com/lemctl/lemctl/host/cli/comparecmd"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

// TestComparerIsCompares checks that the compare page's rows are `lemctl compare`'s figures:
// the same interval, Hedges' g and verdict, and B's direction coloured by the figure's goal.
func TestComparerIsCompares(t *testing.T) {
	agg := func(j, tps []float64) *results.Aggregated {
		return &results.Aggregated{RepeatStats: map[string]*results.Stats{
			study.FigureJPerOutputToken:  results.NewStats(j),
			study.FigureOutputTokensPerS: results.NewStats(tps),
		}}
	}
	// B uses clearly less energy per token and has clearly less throughput.
	a := agg([]float64{2.0, 2.1, 1.9, 2.05, 1.95}, []float64{100, 101, 99, 100.5, 99.5})
	b := agg([]float64{1.0, 1.05, 0.95, 1.02, 0.98}, []float64{80, 81, 79, 80.5, 79.5})
	diffs, method, err := Comparer{}.Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	figs := comparecmd.CompareExperiments(a, b)
	if len(diffs) != len(figs) || len(diffs) != 2 || method != CompareMethod {
		t.Fatalf("%d diffs for %d figures, method %q", len(diffs), len(figs), method)
	}
	for i, d := range diffs {
		f := figs[i]
		if d.Figure != f.Figure || d.Verdict != f.Verdict || d.HedgesG == nil || f.HedgesG == nil || *d.HedgesG != *f.HedgesG ||
			d.DiffLow == nil || f.DiffCI95 == nil || *d.DiffLow != f.DiffCI95.Low || *d.DiffHigh != f.DiffCI95.High {
			t.Errorf("row %d %+v is not compare's %+v", i, d, f)
		}
		if !f.Significant {
			t.Errorf("%s: the fixture's difference must be significant: %s", f.Figure, f.Verdict)
		}
		want := map[string]int{study.FigureJPerOutputToken: 1, study.FigureOutputTokensPerS: -1}[d.Figure]
		if d.Better != want {
			t.Errorf("%s: better %d, want %d (%s)", d.Figure, d.Better, want, d.Verdict)
		}
		if d.Relative == nil || *d.Relative >= 0 {
			t.Errorf("%s: relative %v, want negative (B is lower)", d.Figure, d.Relative)
		}
	}
	// Too few repeats: no interval, no colour, compare's "n too small" verdict.
	diffs, _, err = Comparer{}.Compare(agg([]float64{2}, []float64{100}), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		if d.DiffLow != nil || d.Better != 0 || d.Verdict == "" {
			t.Errorf("one repeat: %+v", d)
		}
	}
}

package reportcmd

import (
	"math"

	"github.com/lemctl/lemctl/host/cli/comparecmd"
	"github.com/lemctl/lemctl/host/report"
	"github.com/lemctl/lemctl/host/results"
)

// CompareMethod is the compare page's description of how its differences are made.
const CompareMethod = "`lemctl compare A B`'s: B − A of the means over repeats with its 95 % interval " +
	"(Welch's, or with a seeded bootstrap for small or skewed samples), Hedges' g and the same verdict (docs/compare.md)"

// Comparer is report.Comparer backed by `lemctl compare`'s statistics (comparecmd, host/stats),
// so a compare page and `lemctl compare A B` give the same intervals, effect sizes and verdicts.
type Comparer struct{}

// Compare implements report.Comparer.
func (Comparer) Compare(a, b *results.Aggregated) ([]report.FigureDiff, string, error) {
	figs := comparecmd.CompareExperiments(a, b)
	out := make([]report.FigureDiff, 0, len(figs))
	for _, f := range figs {
		d := report.FigureDiff{Figure: f.Figure, A: a.RepeatStats[f.Figure], B: b.RepeatStats[f.Figure],
			Diff: f.Diff, HedgesG: f.HedgesG, Verdict: f.Verdict}
		if f.DiffCI95 != nil {
			d.DiffLow, d.DiffHigh = results.Float(f.DiffCI95.Low), results.Float(f.DiffCI95.High)
		}
		if f.Diff != nil && f.MeanA != nil && *f.MeanA != 0 {
			d.Relative = results.Float(*f.Diff / math.Abs(*f.MeanA))
		}
		if f.Significant && f.Diff != nil && *f.Diff != 0 {
			// B is better when it moved the figure in its good direction.
			if (*f.Diff < 0) == report.LowerIsBetter(f.Figure) {
				d.Better = 1
			} else {
				d.Better = -1
			}
		}
		out = append(out, d)
	}
	return out, CompareMethod, nil
}

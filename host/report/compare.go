package report

import (
	"fmt"
	"io"
	"math"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/lemctl/lemctl/host/results"
)

// FigureDiff is one figure of two experiments side by side: their statistics over repeats (a
// single value has N = 1), B − A with its 95 % interval, and the verdict.
type FigureDiff struct {
	Figure string
	A, B   *results.Stats
	// Diff is B − A of the means; DiffLow/DiffHigh its 95 % interval (nil when it cannot be made).
	Diff, DiffLow, DiffHigh *float64
	// Relative is Diff ÷ A's mean.
	Relative *float64
	// HedgesG is the effect size (nil when it cannot be made).
	HedgesG *float64
	// Verdict is the comparer's word on the figure ("B lower", "no difference at 95 %", …) and
	// Better whether B is better (+1), worse (−1) or neither (0).
	Verdict string
	Better  int
}

// Comparer makes the per-figure differences and verdicts of two aggregates. `lemctl report
// --compare` plugs in `lemctl compare`'s statistics (host/stats through host/cli/comparecmd), so
// the page and the command agree; this package has no statistics of its own.
type Comparer interface {
	Compare(a, b *results.Aggregated) (diffs []FigureDiff, method string, err error)
}

// Comparison is what a compare page shows.
type Comparison struct {
	A, B *Experiment
	// Comparer makes the differences; it is required.
	Comparer Comparer
}

// LowerIsBetter reports whether less of a figure is better (energy, latency), as the pages colour
// it; a figure the report does not know is taken as lower-is-better.
func LowerIsBetter(figure string) bool { return infoOf(figure).LowerIsBetter }

// DiffRow is a figure difference as the compare page lists it.
type DiffRow struct{ Figure, A, B, Diff, Interval, Relative, HedgesG, Verdict, Class string }

// ComparePage is the view a compare page's template reads.
type ComparePage struct {
	Page
	AID, BID string
	A, B     *ExperimentPage
	Method   string
	Rows     []DiffRow
	Chart    *Chart
	Same     []KV
}

// WriteCompare writes the HTML page of two experiments side by side.
func WriteCompare(w io.Writer, c Comparison, o Options) error {
	p, err := NewComparePage(c, o)
	if err != nil {
		return err
	}
	return execute(w, "compare", p)
}

// NewComparePage builds the view of a compare page.
func NewComparePage(c Comparison, o Options) (*ComparePage, error) {
	if c.A == nil || c.B == nil || c.A.Aggregated == nil || c.B.Aggregated == nil {
		return nil, fmt.Errorf("report: compare needs two aggregates")
	}
	a, b := c.A.Aggregated, c.B.Aggregated
	pa, err := NewExperimentPage(*c.A, o)
	if err != nil {
		return nil, err
	}
	pb, err := NewExperimentPage(*c.B, o)
	if err != nil {
		return nil, err
	}
	for side, ep := range map[string]*ExperimentPage{"a-": pa, "b-": pb} {
		for _, ch := range []*Chart{ep.EnergyChart, ep.Latency} {
			if ch != nil {
				ch.ID = side + ch.ID
			}
		}
	}
	if c.Comparer == nil {
		return nil, fmt.Errorf("report: compare needs a Comparer (`lemctl compare`'s statistics)")
	}
	diffs, method, err := c.Comparer.Compare(a, b)
	if err != nil {
		return nil, fmt.Errorf("compare %s and %s: %w", a.ExperimentID, b.ExperimentID, err)
	}
	p := &ComparePage{Page: newBase(fmt.Sprintf("Compare %s and %s", a.ExperimentID, b.ExperimentID), o),
		AID: a.ExperimentID, BID: b.ExperimentID, A: pa, B: pb, Method: method}
	same := func(k, va, vb string) {
		if va == vb {
			p.Same = append(p.Same, KV{k, "same: " + va})
		} else {
			p.Same = append(p.Same, KV{k, "A " + va + " · B " + vb})
		}
	}
	same("model", a.Model.Ref+" "+a.Model.SHA256, b.Model.Ref+" "+b.Model.SHA256)
	same("engine", a.Engine.Plugin+" "+a.Engine.Version, b.Engine.Plugin+" "+b.Engine.Version)
	same("dataset", a.Dataset.Name+" "+a.Dataset.SHA256, b.Dataset.Name+" "+b.Dataset.SHA256)
	same("config hash", a.ConfigHash, b.ConfigHash)
	same("validity", pa.Verdict, pb.Verdict)
	for _, d := range diffs {
		fi := infoOf(d.Figure)
		row := DiffRow{Figure: fi.Label + " (" + d.Figure + ")", A: statsText(d.A, fi.Unit), B: statsText(d.B, fi.Unit),
			Diff: g(d.Diff, fi.Unit), Interval: "—", Relative: "—", HedgesG: "—", Verdict: d.Verdict}
		if d.HedgesG != nil {
			row.HedgesG = g(d.HedgesG, "")
		}
		if d.DiffLow != nil && d.DiffHigh != nil {
			row.Interval = fmt.Sprintf("[%s, %s]", g(d.DiffLow, ""), g(d.DiffHigh, ""))
		}
		if d.Relative != nil {
			row.Relative = fmt.Sprintf("%+.2f %%", *d.Relative*100)
		}
		switch d.Better {
		case 1:
			row.Class = "better"
		case -1:
			row.Class = "worse"
		}
		p.Rows = append(p.Rows, row)
	}
	ch, err := diffChart(diffs)
	if err != nil {
		return nil, err
	}
	p.Chart = ch
	return p, nil
}

// diffChart draws each figure's relative difference B − A (in % of A) with its interval.
func diffChart(diffs []FigureDiff) (*Chart, error) {
	var labels []string
	var xys plotter.XYs
	title := "Relative difference B − A (% of A) with the 95 % interval"
	pl := newPlot(title, "", "B − A (% of A)")
	n := 0
	for _, d := range diffs {
		if d.Relative == nil || d.A == nil || d.A.Mean == nil || *d.A.Mean == 0 {
			continue
		}
		y := *d.Relative * 100
		xys = append(xys, plotter.XY{X: float64(n), Y: y})
		labels = append(labels, d.Figure)
		if d.DiffLow != nil && d.DiffHigh != nil {
			scale := 100 / math.Abs(*d.A.Mean)
			l, err := plotter.NewLine(plotter.XYs{{X: float64(n), Y: *d.DiffLow * scale}, {X: float64(n), Y: *d.DiffHigh * scale}})
			if err != nil {
				return nil, err
			}
			l.LineStyle.Color, l.LineStyle.Width = colour(0), vg.Points(2)
			pl.Add(l)
		}
		n++
	}
	if n == 0 {
		return nil, nil
	}
	zero, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 0}, {X: float64(n) - 0.5, Y: 0}})
	if err != nil {
		return nil, err
	}
	zero.LineStyle.Color = colour(7)
	pl.Add(zero)
	sc, err := plotter.NewScatter(xys)
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = colour(0), draw.CircleGlyph{}, vg.Points(3.5)
	pl.Add(sc)
	pl.Legend.Add("B − A (mean), bar: 95 % interval", sc)
	pl.NominalX(labels...)
	pl.X.Tick.Label.Rotation, pl.X.Tick.Label.XAlign = 0.5, -1
	pl.X.Min, pl.X.Max = -0.5, float64(n)-0.5
	lo, hi := math.Min(pl.Y.Min, 0), math.Max(pl.Y.Max, 0)
	pad := math.Max((hi-lo)*0.1, 1)
	pl.Y.Min, pl.Y.Max = lo-pad, hi+pad
	pl.Legend.Top, pl.Legend.Left = false, true
	svg, err := svgOf(chartH+0.6*vg.Inch, pl)
	if err != nil {
		return nil, err
	}
	return &Chart{ID: "compare-diff", Title: title, SVG: svg, Series: 1, Points: n,
		Note: "Figures summarised over repeats in both experiments."}, nil
}

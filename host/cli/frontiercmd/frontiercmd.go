// Package frontiercmd is `lemctl frontier STUDY_ID`: the Pareto sets of a study's points over
// (J per output token, p99 inter-token latency) and (J per output token, output tokens/s), and,
// with --slo, the lowest-energy point that meets every objective, with the 95 % interval of its
// margin. Point figures are means over cycles (host/study); the Pareto sets are host/stats'.
// docs/compare.md has the rules. It only reads: it must never write to or change a results
// directory, and it never recommends an invalid point unless --allow-invalid.
package frontiercmd

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cli/studyload"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/stats"
	"github.com/lemctl/lemctl/host/study"
)

// StudyLoader reads a stored study.
type StudyLoader interface {
	LoadStudy(ctx context.Context, id string) (*study.Aggregate, error)
}

// FrontierOptions are `frontier`'s.
type FrontierOptions struct {
	F            *cliutil.Factory
	Study        string
	SLOs         []string
	AllowInvalid bool
	Output       string
	// Studies reads the study; nil: the study files of --results-dir.
	Studies StudyLoader
}

// NewCmdFrontier builds `lemctl frontier STUDY_ID`; runF, when not nil, runs instead of
// frontierRun (tests).
func NewCmdFrontier(f *cliutil.Factory, runF func(*FrontierOptions) error) *cobra.Command {
	opts := &FrontierOptions{F: f}
	cmd := &cobra.Command{
		Use:   "frontier STUDY_ID",
		Short: "Show a study's Pareto frontier (energy per token against latency and throughput) and recommend a point for an SLO",
		Long: `Show the Pareto sets of a study's points over (J per output token, p99 inter-token latency) and
(J per output token, output tokens/s), each point's figures being its means over cycles. With
--slo (repeatable, all must hold), recommend the point of lowest mean J per output token whose
means meet every objective, with the 95 % interval of each margin; forms: itl_p99_ms<=50,
ttft_p99_ms<=500, tokens_per_s>=100. Invalid points are left out unless --allow-invalid.
See docs/compare.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Study = args[0]
			if runF != nil {
				return runF(opts)
			}
			return frontierRun(cmd.Context(), opts)
		},
	}
	render.OutputVar(cmd, &opts.Output)
	cmd.Flags().StringArrayVar(&opts.SLOs, "slo", nil, "service-level objective the recommended point must meet, e.g. 'itl_p99_ms<=50', 'ttft_p99_ms<=500', 'tokens_per_s>=100' (repeatable)")
	cmd.Flags().BoolVar(&opts.AllowInvalid, "allow-invalid", false, "consider points whose validity is false (each is still named in a warning)")
	return cmd
}

// NewCommand builds `lemctl frontier` for the root.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdFrontier(f, nil) }

// Planes of the frontier: J per output token (minimised) against a second figure.
var Planes = []struct {
	Name, Y string
	// Maximise is true when more of Y is better.
	Maximise bool
}{
	{"energy_vs_itl_p99", study.FigureITLP99MS, false},
	{"energy_vs_throughput", study.FigureOutputTokensPerS, true},
}

// Report is `frontier`'s result (its JSON with -o json).
type Report struct {
	StudyID string  `json:"study_id"`
	State   string  `json:"state"`
	Cycles  int     `json:"cycles"`
	Planes  []Plane `json:"planes"`
	Points  []Point `json:"points"`
	SLOs    []SLO   `json:"slo"`
	// Recommended is the lowest-energy point meeting every SLO (without --slo: the lowest-energy
	// point); null when none does.
	Recommended *Recommendation `json:"recommended"`
	Warnings    []string        `json:"warnings"`
}

// Plane is one Pareto set: the ids of the points no other point beats on both figures.
type Plane struct {
	Name string `json:"name"`
	X    string `json:"x"`
	Y    string `json:"y"`
	// YGoal is "min" or "max" (X is always minimised).
	YGoal  string   `json:"y_goal"`
	Pareto []string `json:"pareto"`
}

// Point is one study point as the frontier sees it.
type Point struct {
	ID       string         `json:"id"`
	Settings map[string]any `json:"settings"`
	Valid    bool           `json:"valid"`
	// Considered is false for a point left out (invalid without --allow-invalid); Excluded says why.
	Considered bool   `json:"considered"`
	Excluded   string `json:"excluded,omitempty"`
	// Figures are the point's means over cycles with their 95 % intervals.
	Figures map[string]Figure `json:"figures"`
	// Pareto lists the planes whose set the point is on.
	Pareto []string `json:"pareto"`
	// MeetsSLO is whether the point's means meet every --slo (null without --slo).
	MeetsSLO *bool `json:"meets_slo"`
}

// Figure is a point's mean of one figure over cycles and its Student t 95 % interval (null with
// fewer than two cycles).
type Figure struct {
	N    int             `json:"n"`
	Mean float64         `json:"mean"`
	CI95 *stats.Interval `json:"ci95"`
}

// Recommendation is the point chosen for the SLOs.
type Recommendation struct {
	Point           string         `json:"point"`
	Settings        map[string]any `json:"settings"`
	JPerOutputToken Figure         `json:"j_per_output_token"`
	Margins         []Margin       `json:"margins"`
}

// Margin is how far the recommended point is inside one SLO: limit − mean for an upper limit,
// mean − limit for a lower one, with its 95 % interval (from the mean's).
type Margin struct {
	SLO    string          `json:"slo"`
	Mean   float64         `json:"mean"`
	Margin float64         `json:"margin"`
	CI95   *stats.Interval `json:"ci95"`
	// Confident is true when the whole interval is inside the limit.
	Confident bool `json:"confident"`
}

func frontierRun(ctx context.Context, opts *FrontierOptions) error {
	if err := render.CheckOutput(opts.Output, render.FormatTable, render.FormatJSON); err != nil {
		return err
	}
	var slos []SLO
	for _, s := range opts.SLOs {
		slo, err := ParseSLO(s)
		if err != nil {
			return err
		}
		slos = append(slos, slo)
	}
	if opts.Studies == nil {
		opts.Studies = studyload.Files{Dir: opts.F.ResultsDir}
	}
	st, err := opts.Studies.LoadStudy(ctx, opts.Study)
	if err != nil {
		return err
	}
	rep := Frontier(st, slos, opts.AllowInvalid)
	if opts.Output == render.FormatJSON {
		for _, w := range rep.Warnings {
			fmt.Fprintf(opts.F.Err, "warning: %s\n", w)
		}
		return render.JSON(opts.F.Out, rep)
	}
	return WriteReport(opts.F.Out, rep)
}

func figureOf(s *results.Stats) (Figure, bool) {
	if s == nil || s.Mean == nil || math.IsNaN(*s.Mean) {
		return Figure{}, false
	}
	f := Figure{N: s.N, Mean: *s.Mean}
	if s.CI95Low != nil && s.CI95High != nil {
		f.CI95 = &stats.Interval{Low: *s.CI95Low, High: *s.CI95High}
	}
	return f, true
}

// Frontier computes the Pareto sets of st's points and the recommendation for slos.
func Frontier(st *study.Aggregate, slos []SLO, allowInvalid bool) *Report {
	rep := &Report{StudyID: st.StudyID, State: st.State, Cycles: st.Cycles, Planes: []Plane{}, Points: []Point{}, SLOs: slos, Warnings: []string{}}
	if slos == nil {
		rep.SLOs = []SLO{}
	}
	if st.State != results.StateCompleted {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("study %s is %q, not completed: its points may lack cycles", st.StudyID, st.State))
	}
	for i := range st.Points {
		sp := &st.Points[i]
		p := Point{ID: sp.ID, Settings: sp.Settings, Valid: sp.Valid, Considered: true, Figures: map[string]Figure{}, Pareto: []string{}}
		for name, s := range sp.Figures {
			if f, ok := figureOf(s); ok {
				p.Figures[name] = f
			}
		}
		if !sp.Valid {
			if allowInvalid {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("point %s is invalid (%s) and considered anyway (--allow-invalid)", sp.ID, errorCodes(sp.Findings)))
			} else {
				p.Considered, p.Excluded = false, "invalid (--allow-invalid considers it)"
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("point %s is invalid (%s) and left out; --allow-invalid considers it", sp.ID, errorCodes(sp.Findings)))
			}
		}
		if _, ok := p.Figures[study.FigureJPerOutputToken]; !ok && p.Considered {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("point %s has no %s: it is on no frontier and cannot be recommended", sp.ID, study.FigureJPerOutputToken))
		}
		rep.Points = append(rep.Points, p)
	}
	for _, pl := range Planes {
		plane := Plane{Name: pl.Name, X: study.FigureJPerOutputToken, Y: pl.Y, YGoal: "min", Pareto: []string{}}
		if pl.Maximise {
			plane.YGoal = "max"
		}
		objs := make([][]float64, len(rep.Points))
		for i, p := range rep.Points {
			x, okx := p.Figures[plane.X]
			y, oky := p.Figures[plane.Y]
			if !p.Considered || !okx || !oky {
				objs[i] = []float64{math.NaN(), math.NaN()}
				continue
			}
			yv := y.Mean
			if pl.Maximise {
				yv = -yv
			}
			objs[i] = []float64{x.Mean, yv}
		}
		for _, i := range stats.ParetoMin(objs) {
			plane.Pareto = append(plane.Pareto, rep.Points[i].ID)
			rep.Points[i].Pareto = append(rep.Points[i].Pareto, plane.Name)
		}
		rep.Planes = append(rep.Planes, plane)
	}
	rep.Recommended = recommend(rep, slos)
	return rep
}

// recommend picks the considered point of lowest mean J/token whose means meet every SLO.
func recommend(rep *Report, slos []SLO) *Recommendation {
	var best *Point
	for i := range rep.Points {
		p := &rep.Points[i]
		if slos != nil {
			meets := true
			for _, s := range slos {
				f, ok := p.Figures[s.Figure]
				meets = meets && ok && s.Meets(f.Mean)
			}
			p.MeetsSLO = &meets
			if !meets {
				continue
			}
		}
		j, ok := p.Figures[study.FigureJPerOutputToken]
		if !p.Considered || !ok {
			continue
		}
		if best == nil || j.Mean < best.Figures[study.FigureJPerOutputToken].Mean {
			best = p
		}
	}
	if best == nil {
		return nil
	}
	r := &Recommendation{Point: best.ID, Settings: best.Settings, JPerOutputToken: best.Figures[study.FigureJPerOutputToken], Margins: []Margin{}}
	for _, s := range slos {
		f := best.Figures[s.Figure]
		m := Margin{SLO: s.Text, Mean: f.Mean, Margin: s.Margin(f.Mean)}
		if f.CI95 != nil {
			a, b := s.Margin(f.CI95.Low), s.Margin(f.CI95.High)
			m.CI95 = &stats.Interval{Low: math.Min(a, b), High: math.Max(a, b)}
			m.Confident = m.CI95.Low > 0 || (m.CI95.Low == 0 && (s.Op == "<=" || s.Op == ">="))
		}
		switch {
		case m.CI95 == nil:
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("the recommended point %s has fewer than two cycles of %s: the margin of %s has no interval", best.ID, s.Figure, s.Text))
		case !m.Confident:
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("the recommended point %s meets %s on its mean, but the margin's 95 %% interval [%.4g, %.4g] crosses the limit: it may not meet it", best.ID, s.Text, m.CI95.Low, m.CI95.High))
		}
		r.Margins = append(r.Margins, m)
	}
	return r
}

// errorCodes names the error findings of a point, or says it lists none.
func errorCodes(fs []results.Finding) string {
	var codes []string
	for _, f := range fs {
		if f.Severity == results.SeverityError && !slices.Contains(codes, f.Code) {
			codes = append(codes, f.Code)
		}
	}
	if len(codes) == 0 {
		return "validity is false"
	}
	return "error findings " + strings.Join(codes, ", ")
}

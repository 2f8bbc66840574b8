// Package comparecmd is `lemctl compare A B`: for two experiments (their repeats), two study
// points (their cycles) or two studies (point by point, matched on settings), it gives per figure
// the difference and ratio of B against A with 95 % intervals, Hedges' g and a plain verdict, and
// says where the environments differ. The statistics are host/stats'; docs/compare.md has the
// methods. It only reads results: it must never write to or change a results directory, and it
// refuses results whose validity is false unless --allow-invalid.
package comparecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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

// StudyLoader reads a stored study; an id that names no study wraps studyload.ErrNoStudy.
type StudyLoader interface {
	LoadStudy(ctx context.Context, id string) (*study.Aggregate, error)
}

// AggregateLoader reads an experiment's aggregate.
type AggregateLoader interface {
	LoadAggregate(ctx context.Context, id string) (*results.Aggregated, error)
}

// Kinds of what compare compares.
const (
	KindExperiment = "experiment"
	KindPoint      = "point"
	KindStudy      = "study"
)

// CompareOptions are `compare`'s.
type CompareOptions struct {
	F            *cliutil.Factory
	A, B         string
	AllowInvalid bool
	Output       string
	// Studies and Aggregates read what is compared; nil: the study files of --results-dir and
	// the results repository.
	Studies    StudyLoader
	Aggregates AggregateLoader
}

// NewCmdCompare builds `lemctl compare A B`; runF, when not nil, runs instead of compareRun (tests).
func NewCmdCompare(f *cliutil.Factory, runF func(*CompareOptions) error) *cobra.Command {
	opts := &CompareOptions{F: f}
	cmd := &cobra.Command{
		Use:   "compare A B",
		Short: "Compare B with A: two experiments, two study points (STUDY:POINT) or two studies point by point",
		Long: `Compare B with A figure by figure: the difference B − A and the ratio B/A with 95 % confidence
intervals, Hedges' g and a verdict. A and B are two experiment ids (the samples are each
experiment's repeats), two study points written STUDY_ID:POINT_ID such as 20261203-batch:p01
(the samples are the point's cycles), or two study ids (points matched on their settings).
Results whose validity is false are refused unless --allow-invalid. See docs/compare.md.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.A, opts.B = args[0], args[1]
			if runF != nil {
				return runF(opts)
			}
			return compareRun(cmd.Context(), opts)
		},
	}
	render.OutputVar(cmd, &opts.Output)
	cmd.Flags().BoolVar(&opts.AllowInvalid, "allow-invalid", false, "compare results whose validity is false (each is still named in a warning)")
	return cmd
}

// NewCommand builds `lemctl compare` for the root.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdCompare(f, nil) }

// Report is `compare`'s result (its JSON with -o json).
type Report struct {
	A     Subject `json:"a"`
	B     Subject `json:"b"`
	Alpha float64 `json:"alpha"`
	// EnvironmentDifferences lists what differs between A's environment and B's.
	EnvironmentDifferences []EnvDiff `json:"environment_differences"`
	// Warnings are everything else a reader must know (invalid results compared, environments
	// not compared, …), also printed above the table.
	Warnings []string `json:"warnings"`
	Pairs    []Pair   `json:"pairs"`
	// Unmatched lists, for two studies, the points of one that have no point of the same
	// settings in the other.
	Unmatched []Unmatched `json:"unmatched"`
}

// Subject is one side of a comparison.
type Subject struct {
	Kind  string `json:"kind"`
	ID    string `json:"id"`
	Valid bool   `json:"valid"`
}

// Pair is two things compared figure by figure: the experiments or points themselves, or one
// point of each study.
type Pair struct {
	A        string         `json:"a"`
	B        string         `json:"b"`
	Settings map[string]any `json:"settings,omitempty"`
	Figures  []Figure       `json:"figures"`
}

// Unmatched is a point of a study that has no counterpart in the other.
type Unmatched struct {
	Side     string         `json:"side"`
	Point    string         `json:"point"`
	Settings map[string]any `json:"settings"`
}

// Figure is one figure's comparison. Every statistic is null when a side has fewer than two
// values.
type Figure struct {
	Figure string   `json:"figure"`
	NA     int      `json:"n_a"`
	NB     int      `json:"n_b"`
	MeanA  *float64 `json:"mean_a"`
	MeanB  *float64 `json:"mean_b"`
	StdA   *float64 `json:"std_a"`
	StdB   *float64 `json:"std_b"`
	// Diff is mean(B) − mean(A); DiffCI95 the interval the verdict rests on, found by Method
	// (welch, or welch+bootstrap for small or skewed samples).
	Diff     *float64        `json:"diff"`
	DiffCI95 *stats.Interval `json:"diff_ci95"`
	Method   string          `json:"method,omitempty"`
	Welch    *WelchJSON      `json:"welch"`
	// BootstrapCI95 is the seeded percentile bootstrap interval of the difference.
	BootstrapCI95 *stats.Interval `json:"bootstrap_ci95"`
	Ratio         *float64        `json:"ratio"`
	RatioCI95     *stats.Interval `json:"ratio_ci95"`
	HedgesG       *float64        `json:"hedges_g"`
	// MinDetectableDiff is the smallest |B − A| these samples detect at 5 % with 80 % power.
	MinDetectableDiff *float64 `json:"min_detectable_diff"`
	Significant       bool     `json:"significant"`
	Verdict           string   `json:"verdict"`
}

// WelchJSON is Welch's test of a Figure.
type WelchJSON struct {
	// T is null when both samples are constant and differ (an infinite t).
	T    *float64       `json:"t"`
	DF   float64        `json:"df"`
	P    float64        `json:"p"`
	CI95 stats.Interval `json:"ci95"`
	// NoVariance: both samples are constant (within rounding); WithinRounding: and their means
	// differ by no more than rounding, so the difference is none (docs/compare.md).
	NoVariance     bool `json:"no_variance"`
	WithinRounding bool `json:"within_rounding"`
}

// side is one resolved argument: what it is, its samples and environment.
type side struct {
	subj  Subject
	exp   *results.Aggregated // an experiment, or the first experiment of a point or study (nil: not loadable)
	st    *study.Aggregate    // a study, or a point's study
	point *study.PointAggregate
	// invalid says why the side is invalid (empty when valid).
	invalid []string
}

func compareRun(ctx context.Context, opts *CompareOptions) error {
	if err := render.CheckOutput(opts.Output, render.FormatTable, render.FormatJSON); err != nil {
		return err
	}
	if opts.Studies == nil {
		opts.Studies = studyload.Files{Dir: opts.F.ResultsDir}
	}
	if opts.Aggregates == nil {
		repo, err := opts.F.Repository(ctx)
		if err != nil {
			return err
		}
		opts.Aggregates = studyload.Aggregates{Repo: repo}
	}
	rep, err := Compare(ctx, opts.Studies, opts.Aggregates, opts.A, opts.B, opts.AllowInvalid)
	if err != nil {
		return err
	}
	if opts.Output == render.FormatJSON {
		for _, w := range rep.Warnings {
			fmt.Fprintf(opts.F.Err, "warning: %s\n", w)
		}
		return render.JSON(opts.F.Out, rep)
	}
	return WriteReport(opts.F, rep)
}

// Compare resolves a and b and compares b with a. Invalid results are an error (exit 1) unless
// allowInvalid.
func Compare(ctx context.Context, studies StudyLoader, aggs AggregateLoader, a, b string, allowInvalid bool) (*Report, error) {
	sa, err := resolve(ctx, studies, aggs, a)
	if err != nil {
		return nil, err
	}
	sb, err := resolve(ctx, studies, aggs, b)
	if err != nil {
		return nil, err
	}
	if sa.subj.Kind != sb.subj.Kind {
		return nil, cliutil.Usagef("compare: A (%s) is %s and B (%s) is %s: compare two experiments, two study points (STUDY_ID:POINT_ID) or two studies",
			a, article(sa.subj.Kind), b, article(sb.subj.Kind))
	}
	rep := &Report{A: sa.subj, B: sb.subj, Alpha: stats.Alpha, EnvironmentDifferences: []EnvDiff{}, Warnings: []string{}, Pairs: []Pair{}, Unmatched: []Unmatched{}}
	var refused []string
	for _, s := range []struct {
		name string
		side *side
	}{{"A", sa}, {"B", sb}} {
		for _, why := range s.side.invalid {
			msg := fmt.Sprintf("%s (%s %s) is invalid: %s", s.name, s.side.subj.Kind, s.side.subj.ID, why)
			if allowInvalid {
				rep.Warnings = append(rep.Warnings, msg+" (compared anyway: --allow-invalid)")
			} else {
				refused = append(refused, msg)
			}
		}
	}
	if len(refused) > 0 {
		return nil, cliutil.Failed(fmt.Errorf("compare refuses invalid results (`lemctl results show` lists the findings; --allow-invalid compares them anyway):\n  %s",
			strings.Join(refused, "\n  ")))
	}
	if sa.exp != nil && sb.exp != nil {
		rep.EnvironmentDifferences = EnvDiffs(EnvOf(sa.exp), EnvOf(sb.exp))
	} else {
		rep.Warnings = append(rep.Warnings, "environments not compared: an experiment of "+missingExp(sa, sb)+" has no readable aggregate")
	}
	if sa.st != nil && sb.st != nil && sa.st.LemctlVersion != sb.st.LemctlVersion &&
		!slices.ContainsFunc(rep.EnvironmentDifferences, func(d EnvDiff) bool { return d.What == envLemctl }) {
		rep.EnvironmentDifferences = append(rep.EnvironmentDifferences, EnvDiff{What: "lemctl version (study)", A: sa.st.LemctlVersion, B: sb.st.LemctlVersion})
	}
	switch sa.subj.Kind {
	case KindExperiment:
		rep.Pairs = append(rep.Pairs, Pair{A: sa.subj.ID, B: sb.subj.ID, Figures: CompareExperiments(sa.exp, sb.exp)})
	case KindPoint:
		rep.Pairs = append(rep.Pairs, Pair{A: sa.subj.ID, B: sb.subj.ID, Settings: sb.point.Settings,
			Figures: compareFigures(pointSamples(sa.point), pointSamples(sb.point))})
	case KindStudy:
		pairStudies(rep, sa.st, sb.st)
	}
	return rep, nil
}

func missingExp(sa, sb *side) string {
	if sa.exp == nil {
		return "A"
	}
	return "B"
}

func article(kind string) string {
	if kind == KindExperiment {
		return "an experiment"
	}
	return "a " + map[string]string{KindPoint: "study point", KindStudy: "study"}[kind]
}

// resolve reads one argument: STUDY_ID:POINT_ID is a point; an id the study loader knows is a
// study; anything else an experiment (experiment ids never hold ':').
func resolve(ctx context.Context, studies StudyLoader, aggs AggregateLoader, arg string) (*side, error) {
	if sid, pid, ok := strings.Cut(arg, ":"); ok {
		if sid == "" || pid == "" {
			return nil, cliutil.Usagef("compare: %q: write a study point as STUDY_ID:POINT_ID, such as mystudy:p01", arg)
		}
		st, err := studies.LoadStudy(ctx, sid)
		if err != nil {
			return nil, err
		}
		p, err := studyload.Point(st, pid)
		if err != nil {
			return nil, err
		}
		s := &side{subj: Subject{Kind: KindPoint, ID: arg, Valid: p.Valid}, st: st, point: p}
		if !p.Valid {
			s.invalid = append(s.invalid, findingsSummary(p.Findings))
		}
		s.exp = firstExperiment(ctx, aggs, []*study.PointAggregate{p})
		return s, nil
	}
	st, err := studies.LoadStudy(ctx, arg)
	if err == nil {
		s := &side{subj: Subject{Kind: KindStudy, ID: arg, Valid: true}, st: st}
		var pts []*study.PointAggregate
		for i := range st.Points {
			p := &st.Points[i]
			pts = append(pts, p)
			if !p.Valid {
				s.subj.Valid = false
				s.invalid = append(s.invalid, "point "+p.ID+": "+findingsSummary(p.Findings))
			}
		}
		s.exp = firstExperiment(ctx, aggs, pts)
		return s, nil
	}
	if !errors.Is(err, studyload.ErrNoStudy) {
		return nil, err
	}
	agg, err := aggs.LoadAggregate(ctx, arg)
	if err != nil {
		return nil, err
	}
	s := &side{subj: Subject{Kind: KindExperiment, ID: arg, Valid: agg.Validity.Valid}, exp: agg}
	if !agg.Validity.Valid {
		s.invalid = append(s.invalid, findingsSummary(agg.Validity.Findings))
	}
	return s, nil
}

// firstExperiment is the aggregate of the first readable experiment of the points: it stands for
// their environment. Nil when none can be read.
func firstExperiment(ctx context.Context, aggs AggregateLoader, pts []*study.PointAggregate) *results.Aggregated {
	for _, p := range pts {
		for _, id := range p.Experiments {
			if a, err := aggs.LoadAggregate(ctx, id); err == nil {
				return a
			}
		}
	}
	return nil
}

// findingsSummary names the error findings (or says there are none to show).
func findingsSummary(fs []results.Finding) string {
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

// CompareExperiments compares b's figures with a's over their repeats, as `lemctl compare A B`
// does for two experiments (and `lemctl report --compare A B` shows): one Figure per figure both
// summarise, in study.Figures' order.
func CompareExperiments(a, b *results.Aggregated) []Figure {
	return compareFigures(expSamples(a), expSamples(b))
}

// expSamples are an experiment's per-repeat values by figure.
func expSamples(a *results.Aggregated) map[string][]float64 {
	out := map[string][]float64{}
	for k, st := range a.RepeatStats {
		if st != nil {
			out[k] = st.Values
		}
	}
	return out
}

// pointSamples are a point's per-cycle values by figure.
func pointSamples(p *study.PointAggregate) map[string][]float64 {
	out := map[string][]float64{}
	for k, st := range p.Figures {
		if st != nil {
			out[k] = st.Values
		}
	}
	return out
}

// pairStudies matches the studies' points on their settings and compares each pair.
func pairStudies(rep *Report, a, b *study.Aggregate) {
	used := map[*study.PointAggregate]bool{}
	match := func(pa *study.PointAggregate) *study.PointAggregate {
		k := settingsKey(pa.Settings)
		for i := range b.Points {
			if pb := &b.Points[i]; !used[pb] && settingsKey(pb.Settings) == k {
				return pb
			}
		}
		return nil
	}
	for i := range a.Points {
		pa := &a.Points[i]
		pb := match(pa)
		if pb == nil {
			rep.Unmatched = append(rep.Unmatched, Unmatched{Side: "a", Point: pa.ID, Settings: pa.Settings})
			continue
		}
		used[pb] = true
		rep.Pairs = append(rep.Pairs, Pair{A: a.StudyID + ":" + pa.ID, B: b.StudyID + ":" + pb.ID, Settings: pa.Settings,
			Figures: compareFigures(pointSamples(pa), pointSamples(pb))})
	}
	for i := range b.Points {
		if pb := &b.Points[i]; !used[pb] {
			rep.Unmatched = append(rep.Unmatched, Unmatched{Side: "b", Point: pb.ID, Settings: pb.Settings})
		}
	}
	if len(rep.Unmatched) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d point(s) have no point with the same settings in the other study and are not compared (listed below)", len(rep.Unmatched)))
	}
	if len(rep.Pairs) == 0 {
		rep.Warnings = append(rep.Warnings, "no point of A has the settings of a point of B: nothing compared")
	}
}

// settingsKey is a canonical form of settings (encoding/json sorts map keys).
func settingsKey(s map[string]any) string {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Sprint(s)
	}
	return string(b)
}

// figureOrder is study.Figures' order, then every other figure by name.
func figureOrder(a, b map[string][]float64) []string {
	var out []string
	for _, f := range study.Figures {
		if _, ok := a[f]; ok {
			if _, ok := b[f]; ok {
				out = append(out, f)
			}
		}
	}
	for _, f := range slices.Sorted(maps.Keys(a)) {
		if _, ok := b[f]; ok && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func compareFigures(a, b map[string][]float64) []Figure {
	out := []Figure{}
	for _, name := range figureOrder(a, b) {
		out = append(out, compareFigure(name, a[name], b[name]))
	}
	return out
}

func ptr(v float64) *float64 { return &v }

// finite is v, or nil when v is NaN or infinite (JSON has neither).
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func mean(x []float64) *float64 {
	if len(x) == 0 {
		return nil
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return ptr(s / float64(len(x)))
}

func compareFigure(name string, a, b []float64) Figure {
	f := Figure{Figure: name, NA: len(a), NB: len(b), MeanA: mean(a), MeanB: mean(b)}
	if f.MeanA != nil && f.MeanB != nil {
		f.Diff = ptr(*f.MeanB - *f.MeanA)
		if *f.MeanA > 0 && *f.MeanB > 0 {
			f.Ratio = ptr(*f.MeanB / *f.MeanA)
		}
	}
	c, err := stats.Compare(a, b)
	if err != nil {
		f.Verdict = fmt.Sprintf("n too small: A has %d value(s), B %d; an interval needs 2 or more on each side", len(a), len(b))
		return f
	}
	f.StdA, f.StdB = ptr(c.StdA), ptr(c.StdB)
	f.DiffCI95, f.Method = &c.CI, c.Method
	f.Welch = &WelchJSON{T: finite(c.Welch.T), DF: c.Welch.DF, P: c.Welch.P, CI95: c.Welch.CI,
		NoVariance: c.Welch.Constant, WithinRounding: c.Welch.WithinRounding}
	f.BootstrapCI95 = &c.Bootstrap
	if c.Ratio != nil {
		f.RatioCI95 = &c.Ratio.CI
	}
	f.HedgesG = finite(c.HedgesG)
	f.MinDetectableDiff = ptr(c.MinDetectable)
	f.Significant = c.Significant
	f.Verdict = verdict(name, c)
	return f
}

// nouns name the figures in verdicts; energy figures read "B uses … less …".
var nouns = map[string]struct {
	noun   string
	energy bool
}{
	study.FigureJPerOutputToken:        {"energy per output token", true},
	study.FigureDynamicJPerOutputToken: {"dynamic energy per output token", true},
	study.FigureOutputTokensPerS:       {"throughput (output tokens/s)", false},
	study.FigureTTFTP50MS:              {"median time to first token", false},
	study.FigureTTFTP99MS:              {"p99 time to first token", false},
	study.FigureITLP50MS:               {"median inter-token latency", false},
	study.FigureITLP99MS:               {"p99 inter-token latency", false},
	study.FigurePowerW:                 {"power", false},
	"energy_j":                         {"energy per repeat", true},
}

// verdict says in words what c shows: "B uses 12 % ± 3 % less energy per output token;
// significant at 5 %", or "no significant difference; n too small to detect less than 4 %".
// Percentages are of A's mean; with A's mean 0 the difference is given in the figure's unit.
func verdict(name string, c *stats.Comparison) string {
	n, ok := nouns[name]
	if !ok {
		n.noun = name
	}
	diff := c.Welch.Diff
	rel := c.MeanA != 0
	amount := func(v float64) string {
		if rel {
			return fmt.Sprintf("%.3g %%", 100*v/abs(c.MeanA))
		}
		return fmt.Sprintf("%.3g", v)
	}
	if c.Welch.WithinRounding {
		return fmt.Sprintf("no significant difference: %s (|B − A| = %.3g ≤ %.3g, %g of the values)", c.Note, abs(diff), c.Welch.Rounding, stats.RoundingRel)
	}
	if !c.Significant {
		return fmt.Sprintf("no significant difference (p = %.2g); n too small to detect less than %s", c.Welch.P, amount(c.MinDetectable))
	}
	pm := amount(c.CI.HalfWidth())
	sig := fmt.Sprintf("significant at 5 %% (p = %.2g)", c.Welch.P)
	if c.Welch.Constant {
		sig = "significant: " + c.Note
	}
	if n.energy {
		dir := "less"
		if diff > 0 {
			dir = "more"
		}
		return fmt.Sprintf("B uses %s ± %s %s %s; %s", amount(abs(diff)), pm, dir, n.noun, sig)
	}
	dir := "lower"
	if diff > 0 {
		dir = "higher"
	}
	return fmt.Sprintf("B's %s is %s ± %s %s; %s", n.noun, amount(abs(diff)), pm, dir, sig)
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

package frontiercmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cli/studyload"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

var noise = []float64{-1.2, 0.5, 0.3, -0.4, 1.1, -0.6, 0.2, 0.1}

func values(m float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = m * (1 + noise[i%len(noise)]/100)
	}
	return out
}

func point(id string, batch int, j, tps, itl float64, valid bool) study.PointAggregate {
	return study.PointAggregate{ID: id, Settings: map[string]any{"workload.batch_size": batch}, Valid: valid,
		Figures: map[string]*results.Stats{
			study.FigureJPerOutputToken:  results.NewStats(values(j, 8)),
			study.FigureOutputTokensPerS: results.NewStats(values(tps, 8)),
			study.FigureITLP99MS:         results.NewStats(values(itl, 8)),
			study.FigureTTFTP99MS:        results.NewStats(values(itl*10, 8)),
		}}
}

// The truth of the fixture: on (J/token, ITL p99) the frontier is p00, p01, p02; on (J/token,
// tokens/s) it is p01, p02; p03 is dominated on both; p04 would beat everything but is invalid.
// The lowest-energy point with ITL p99 ≤ 50 ms is p01.
func fixture() *study.Aggregate {
	return &study.Aggregate{SchemaVersion: "1", Kind: study.Kind, StudyID: "s1", State: results.StateCompleted, Cycles: 8,
		Points: []study.PointAggregate{
			point("p00", 1, 1.0, 100, 20, true),
			point("p01", 4, 0.8, 550, 30, true),
			point("p02", 16, 0.6, 500, 60, true),
			point("p03", 8, 0.9, 250, 40, true),
			point("p04", 32, 0.5, 600, 10, false),
		}}
}

type fakeStudies map[string]*study.Aggregate

func (f fakeStudies) LoadStudy(_ context.Context, id string) (*study.Aggregate, error) {
	if s, ok := f[id]; ok {
		return s, nil
	}
	return nil, cliutil.Failed(fmt.Errorf("study %s: %w", id, studyload.ErrNoStudy))
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	f := &cliutil.Factory{Out: &out, Err: &errb, ResultsDir: t.TempDir()}
	cmd := NewCmdFrontier(f, func(o *FrontierOptions) error {
		o.Studies = fakeStudies{"s1": fixture()}
		return frontierRun(context.Background(), o)
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	if err != nil {
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), cliutil.CodeOf(err)
}

func jsonReport(t *testing.T, args ...string) (*Report, map[string]any) {
	t.Helper()
	out, errs, code := run(t, append(args, "-o", "json")...)
	if code != 0 {
		t.Fatalf("frontier %v: exit %d: %s", args, code, errs)
	}
	var rep Report
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	_ = json.Unmarshal([]byte(out), &raw)
	return &rep, raw
}

func TestParetoSets(t *testing.T) {
	rep, _ := jsonReport(t, "s1")
	want := map[string][]string{"energy_vs_itl_p99": {"p00", "p01", "p02"}, "energy_vs_throughput": {"p01", "p02"}}
	for _, pl := range rep.Planes {
		if !slices.Equal(pl.Pareto, want[pl.Name]) {
			t.Errorf("plane %s: pareto %v, want %v", pl.Name, pl.Pareto, want[pl.Name])
		}
	}
	if len(rep.Planes) != 2 {
		t.Errorf("planes %+v", rep.Planes)
	}
	if p := rep.Points[4]; p.Considered || len(p.Pareto) != 0 {
		t.Errorf("invalid p04: %+v", p)
	}
	// Without --slo the recommendation is the lowest-energy considered point.
	if rep.Recommended == nil || rep.Recommended.Point != "p02" {
		t.Errorf("recommended %+v, want p02", rep.Recommended)
	}
}

func TestSLOPicksTheKnownBestPoint(t *testing.T) {
	rep, _ := jsonReport(t, "s1", "--slo", "itl_p99_ms<=50")
	r := rep.Recommended
	if r == nil || r.Point != "p01" {
		t.Fatalf("recommended %+v, want p01", r)
	}
	if len(r.Margins) != 1 {
		t.Fatalf("margins %+v", r.Margins)
	}
	m := r.Margins[0]
	if m.Margin < 19.9 || m.Margin > 20.1 || m.CI95 == nil || !m.CI95.Contains(m.Margin) || m.CI95.Low <= 0 || !m.Confident {
		t.Errorf("margin %+v: want about 20 ms with an interval above 0", m)
	}
	meets := map[string]bool{}
	for _, p := range rep.Points {
		if p.MeetsSLO != nil {
			meets[p.ID] = *p.MeetsSLO
		}
	}
	if !meets["p00"] || !meets["p01"] || meets["p02"] || !meets["p03"] || !meets["p04"] {
		t.Errorf("meets %v", meets)
	}
	out, _, _ := run(t, "s1", "--slo", "itl_p99_ms<=50")
	for _, want := range []string{"recommended: p01 workload.batch_size=4 (lowest J/token meeting itl_p99_ms<=50): 0.8 [", "itl_p99_ms<=50: mean 30, margin 20 (95 % CI [", "MEETS SLO", "left out: invalid"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Two objectives, and a lower limit through the alias.
	rep, _ = jsonReport(t, "s1", "--slo", "tokens_per_s>=260", "--slo", "ttft_p99_ms < 350")
	if rep.Recommended == nil || rep.Recommended.Point != "p01" || len(rep.Recommended.Margins) != 2 {
		t.Errorf("two objectives: %+v", rep.Recommended)
	}
	// The invalid p04 wins only with --allow-invalid.
	rep, _ = jsonReport(t, "s1", "--slo", "itl_p99_ms<=50", "--allow-invalid")
	if rep.Recommended == nil || rep.Recommended.Point != "p04" {
		t.Errorf("--allow-invalid: %+v", rep.Recommended)
	}
}

func TestNoPointMeetsTheSLO(t *testing.T) {
	_, raw := jsonReport(t, "s1", "--slo", "itl_p99_ms<=50", "--slo", "tokens_per_s>=560")
	if v, ok := raw["recommended"]; !ok || v != nil {
		t.Errorf("recommended = %v (present %v), want null", v, ok)
	}
	out, _, code := run(t, "s1", "--slo", "itl_p99_ms<=5")
	if code != 0 || !strings.Contains(out, "recommended: none — no point meets itl_p99_ms<=5") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestMarginCrossingTheLimitIsSaid(t *testing.T) {
	rep, _ := jsonReport(t, "s1", "--slo", "itl_p99_ms<=30.05")
	r := rep.Recommended
	if r == nil || r.Point != "p01" || r.Margins[0].Confident {
		t.Fatalf("recommended %+v", r)
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "crosses the limit") }) {
		t.Errorf("warnings %v", rep.Warnings)
	}
}

func TestBadSLO(t *testing.T) {
	for _, c := range []struct{ slo, want string }{
		{"itl_p99_ms=50", "no operator"},
		{"itl_p99<=50", `unknown figure "itl_p99"`},
		{"itl_p99_ms<=fast", `the limit "fast" is not a finite number`},
		{"<=5", "no figure before the operator"},
		{"tokens_per_s>=NaN", "not a finite number"},
	} {
		_, errs, code := run(t, "s1", "--slo", c.slo)
		if code != 2 || !strings.Contains(errs, "--slo") || !strings.Contains(errs, c.want) || !strings.Contains(errs, "valid forms: itl_p99_ms<=50") {
			t.Errorf("--slo %q: exit %d, %q", c.slo, code, errs)
		}
	}
	_, errs, code := run(t, "nope")
	if code != 1 || !strings.Contains(errs, "study nope: no such study") {
		t.Errorf("unknown study: exit %d, %q", code, errs)
	}
}

func TestParseSLO(t *testing.T) {
	s, err := ParseSLO(" tokens_per_s > 10 ")
	if err != nil || s.Figure != study.FigureOutputTokensPerS || s.Op != ">" || s.Limit != 10 {
		t.Fatalf("%+v %v", s, err)
	}
	if s.Meets(10) || !s.Meets(10.5) || s.Margin(12) != 2 {
		t.Errorf("> 10: meets(10)=%v meets(10.5)=%v margin(12)=%v", s.Meets(10), s.Meets(10.5), s.Margin(12))
	}
	u, _ := ParseSLO("itl_p99_ms<=50")
	if !u.Meets(50) || u.Margin(45) != 5 {
		t.Errorf("<= 50: %+v", u)
	}
}

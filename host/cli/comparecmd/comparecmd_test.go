package comparecmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cli/studyload"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

// noise is a fixed, roughly centred spread of ±1.2 % used to make cycle values.
var noise = []float64{-1.2, 0.5, 0.3, -0.4, 1.1, -0.6, 0.2, 0.1}

// values are n cycle values around m with a relative spread of about 1 %.
func values(m float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = m * (1 + noise[i%len(noise)]/100)
	}
	return out
}

// point is a study point whose J/token has mean j, throughput tps and ITL p99 itl, over n cycles.
func point(id string, settings map[string]any, j, tps, itl float64, n int) study.PointAggregate {
	exps := make([]string, n)
	for i := range exps {
		exps[i] = fmt.Sprintf("exp-%s-%d", id, i)
	}
	return study.PointAggregate{ID: id, Settings: settings, Experiments: exps, Valid: true, Findings: []results.Finding{},
		Figures: map[string]*results.Stats{
			study.FigureJPerOutputToken:  results.NewStats(values(j, n)),
			study.FigureOutputTokensPerS: results.NewStats(values(tps, n)),
			study.FigureITLP99MS:         results.NewStats(values(itl, n)),
		}}
}

// studies: "s1" has p00 (baseline), p01 (J/token 10 % lower, significant) and p02 (equal to p00);
// "s2" repeats s1's settings for batch 1 and 4, 10 % lower everywhere, and adds batch 16.
type fakeStudies map[string]*study.Aggregate

func (f fakeStudies) LoadStudy(_ context.Context, id string) (*study.Aggregate, error) {
	if s, ok := f[id]; ok {
		return s, nil
	}
	return nil, cliutil.Failed(fmt.Errorf("study %s: %w", id, studyload.ErrNoStudy))
}

type fakeAggs map[string]*results.Aggregated

func (f fakeAggs) LoadAggregate(_ context.Context, id string) (*results.Aggregated, error) {
	if a, ok := f[id]; ok {
		return a, nil
	}
	return nil, cliutil.Failed(fmt.Errorf("experiment %s has no aggregate", id))
}

func fixtureStudies() fakeStudies {
	s1 := &study.Aggregate{SchemaVersion: "1", Kind: study.Kind, StudyID: "s1", LemctlVersion: "v1", Points: []study.PointAggregate{
		point("p00", map[string]any{"batch": 1}, 1.0, 100, 20, 8),
		point("p01", map[string]any{"batch": 4}, 0.9, 300, 30, 8),
		point("p02", map[string]any{"batch": 8}, 1.0, 100, 20, 8),
	}}
	// p02's cycles are p00's in another order: the same mean and spread.
	p := s1.Points[2].Figures
	v := p[study.FigureJPerOutputToken].Values
	p[study.FigureJPerOutputToken] = results.NewStats(append(v[4:], v[:4]...))
	s2 := &study.Aggregate{SchemaVersion: "1", Kind: study.Kind, StudyID: "s2", LemctlVersion: "v1", Points: []study.PointAggregate{
		point("p00", map[string]any{"batch": 4}, 0.81, 300, 30, 8),
		point("p01", map[string]any{"batch": 1}, 0.9, 100, 20, 8),
		point("p02", map[string]any{"batch": 16}, 0.7, 500, 60, 8),
	}}
	return fakeStudies{"s1": s1, "s2": s2}
}

// aggregate is an experiment with the given J/token per repeat, lemctl version and GPU power limit.
func aggregate(id string, jpt []float64, version, powerLimit string, valid bool) *results.Aggregated {
	a := &results.Aggregated{ExperimentID: id, Provenance: results.Provenance{LemctlVersion: version},
		Engine:  results.Engine{Plugin: "onnx", Version: "1"},
		Devices: []results.Slot{{Device: results.Device{Kind: "cuda", Name: "NVIDIA H100"}}},
		Environment: results.AggEnvironment{Hosts: []results.HostEnvironment{{Facts: map[string]string{"cpu_model": "x", "nvml.driver_version": "550.1"},
			Devices: []results.DeviceEnvironment{{ID: "gpu0", Facts: map[string]string{"power_limit_enforced_w": powerLimit, "temperature_c": "40"}}}}}},
		Validity:    results.Validity{Valid: valid, Findings: []results.Finding{}},
		RepeatStats: map[string]*results.Stats{"j_per_output_token": results.NewStats(jpt), "output_tokens_per_s": results.NewStats(values(50, len(jpt)))},
	}
	if !valid {
		a.Validity.Findings = append(a.Validity.Findings, results.Finding{Code: "counter_reset", Severity: results.SeverityError, Message: "reset"})
	}
	return a
}

func fixtureAggs() fakeAggs {
	f := fakeAggs{
		"e-base":    aggregate("e-base", values(2.0, 5), "v1", "300", true),
		"e-lower":   aggregate("e-lower", values(1.6, 5), "v2", "250", true),
		"e-invalid": aggregate("e-invalid", values(1.6, 5), "v1", "300", false),
		"e-one":     aggregate("e-one", []float64{1.9}, "v1", "300", true),
	}
	for _, s := range fixtureStudies() {
		for _, p := range s.Points {
			for _, e := range p.Experiments {
				f[e] = aggregate(e, []float64{1}, "v1", "300", true)
			}
		}
	}
	return f
}

// run executes `lemctl compare ARGS…` on the fixtures.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	f := &cliutil.Factory{Out: &out, Err: &errb, ResultsDir: t.TempDir()}
	cmd := NewCmdCompare(f, func(o *CompareOptions) error {
		o.Studies, o.Aggregates = fixtureStudies(), fixtureAggs()
		return compareRun(context.Background(), o)
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

func figure(t *testing.T, rep *Report, pair int, name string) Figure {
	t.Helper()
	for _, f := range rep.Pairs[pair].Figures {
		if f.Figure == name {
			return f
		}
	}
	t.Fatalf("pair %d has no figure %s: %+v", pair, name, rep.Pairs[pair])
	return Figure{}
}

func jsonReport(t *testing.T, args ...string) *Report {
	t.Helper()
	out, errs, code := run(t, append(args, "-o", "json")...)
	if code != 0 {
		t.Fatalf("compare %v: exit %d: %s", args, code, errs)
	}
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return &rep
}

func TestKnownDifferenceIsSignificant(t *testing.T) {
	rep := jsonReport(t, "s1:p00", "s1:p01")
	if rep.A.Kind != KindPoint || len(rep.Pairs) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	f := figure(t, rep, 0, study.FigureJPerOutputToken)
	if !f.Significant || f.NA != 8 || f.DiffCI95 == nil || f.DiffCI95.High >= 0 || !f.DiffCI95.Contains(-0.1) {
		t.Errorf("J/token 10 %% lower: %+v", f)
	}
	if !strings.HasPrefix(f.Verdict, "B uses 10 % ± ") || !strings.Contains(f.Verdict, "less energy per output token; significant at 5 %") {
		t.Errorf("verdict %q", f.Verdict)
	}
	if f.Ratio == nil || *f.Ratio < 0.8999 || *f.Ratio > 0.9001 || f.RatioCI95.Contains(1) {
		t.Errorf("ratio %v %v", f.Ratio, f.RatioCI95)
	}
	if f.HedgesG == nil || *f.HedgesG > -2 {
		t.Errorf("g = %v: want a large negative effect", f.HedgesG)
	}
	tp := figure(t, rep, 0, study.FigureOutputTokensPerS)
	if !tp.Significant || !strings.Contains(tp.Verdict, "throughput (output tokens/s) is 200 % ± ") || !strings.Contains(tp.Verdict, "higher") {
		t.Errorf("throughput verdict %q", tp.Verdict)
	}
}

func TestNullDifferenceIsNot(t *testing.T) {
	rep := jsonReport(t, "s1:p00", "s1:p02")
	f := figure(t, rep, 0, study.FigureJPerOutputToken)
	if f.Significant || f.DiffCI95 == nil || !f.DiffCI95.Contains(0) {
		t.Errorf("equal points: %+v", f)
	}
	if !strings.HasPrefix(f.Verdict, "no significant difference") || !strings.Contains(f.Verdict, "n too small to detect less than ") {
		t.Errorf("verdict %q", f.Verdict)
	}
	if f.MinDetectableDiff == nil || *f.MinDetectableDiff <= 0 || *f.MinDetectableDiff > 0.05 {
		t.Errorf("min detectable %v", f.MinDetectableDiff)
	}
}

func TestTable(t *testing.T) {
	out, errs, code := run(t, "s1:p00", "s1:p01")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"FIGURE", "B − A (95 % CI)", "B/A (95 % CI)", "VERDICT", "j_per_output_token", "1 (n=8)", "0.9 (n=8)", "B uses 10 % ± "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestExperimentsAndEnvironment(t *testing.T) {
	out, errs, code := run(t, "e-base", "e-lower")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"A  experiment e-base",
		"warning: environments differ: device power_limit_enforced_w: A 300, B 250",
		"warning: environments differ: lemctl version: A v1, B v2",
		"B uses 20 % ± ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "temperature") || strings.Contains(out, "driver_version") {
		t.Errorf("a fact that does not differ, or is not compared, is said:\n%s", out)
	}
	rep := jsonReport(t, "e-base", "e-lower")
	if len(rep.EnvironmentDifferences) != 2 {
		t.Errorf("environment differences %+v, want power limit and lemctl version", rep.EnvironmentDifferences)
	}
	if f := figure(t, rep, 0, "j_per_output_token"); !f.Significant || f.Method != "welch+bootstrap" {
		t.Errorf("5 repeats, 20 %% lower: %+v", f)
	}
}

func TestInvalidRefused(t *testing.T) {
	_, errs, code := run(t, "e-base", "e-invalid")
	if code != 1 || !strings.Contains(errs, "B (experiment e-invalid) is invalid: error findings counter_reset") || !strings.Contains(errs, "--allow-invalid") {
		t.Errorf("invalid B: exit %d, %q", code, errs)
	}
	out, errs, code := run(t, "e-base", "e-invalid", "--allow-invalid")
	if code != 0 || !strings.Contains(out, "warning: B (experiment e-invalid) is invalid") {
		t.Errorf("--allow-invalid: exit %d, out %q, err %q", code, out, errs)
	}
}

func TestOneRepeatIsTooFew(t *testing.T) {
	rep := jsonReport(t, "e-base", "e-one")
	f := figure(t, rep, 0, "j_per_output_token")
	if f.Significant || f.DiffCI95 != nil || f.Welch != nil || !strings.HasPrefix(f.Verdict, "n too small: A has 5 value(s), B 1") {
		t.Errorf("one repeat: %+v", f)
	}
	if f.Diff == nil || *f.Diff > -0.09 || *f.Diff < -0.11 {
		t.Errorf("the difference of the means is still given: %v", f.Diff)
	}
}

func TestStudiesPointByPoint(t *testing.T) {
	rep := jsonReport(t, "s1", "s2")
	if len(rep.Pairs) != 2 {
		t.Fatalf("pairs %+v, want batch 1 and batch 4", rep.Pairs)
	}
	if rep.Pairs[0].A != "s1:p00" || rep.Pairs[0].B != "s2:p01" || rep.Pairs[1].A != "s1:p01" || rep.Pairs[1].B != "s2:p00" {
		t.Errorf("pairs matched on settings: %s–%s, %s–%s", rep.Pairs[0].A, rep.Pairs[0].B, rep.Pairs[1].A, rep.Pairs[1].B)
	}
	for i := range rep.Pairs {
		if f := figure(t, rep, i, study.FigureJPerOutputToken); !f.Significant || *f.Ratio > 0.9001 {
			t.Errorf("pair %d: %+v", i, f)
		}
	}
	if len(rep.Unmatched) != 2 || rep.Unmatched[0].Point != "p02" || rep.Unmatched[0].Side != "a" || rep.Unmatched[1].Side != "b" {
		t.Errorf("unmatched %+v", rep.Unmatched)
	}
	out, _, _ := run(t, "s1", "s2")
	if !strings.Contains(out, "not compared: s1:p02 batch=8") || !strings.Contains(out, "s1:p00 vs s2:p01  batch=1") {
		t.Errorf("table:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"s1:p00", "e-base"}, 2, "A (s1:p00) is a study point and B (e-base) is an experiment"},
		{[]string{"s1:p09", "s1:p00"}, 2, `study s1 has no point "p09" (its points: p00, p01, p02)`},
		{[]string{"s1:", "s1:p00"}, 2, "STUDY_ID:POINT_ID"},
		{[]string{"nope", "e-base"}, 1, "experiment nope has no aggregate"},
		{[]string{"e-base"}, 2, "accepts 2 arg"},
		{[]string{"e-base", "e-lower", "-o", "yaml"}, 2, "valid values are table, json"},
	} {
		_, errs, code := run(t, c.args...)
		if code != c.code && !(c.code == 2 && code == 1 && strings.Contains(errs, "accepts")) || !strings.Contains(errs, c.want) {
			t.Errorf("compare %v: exit %d, %q; want exit %d with %q", c.args, code, errs, c.code, c.want)
		}
	}
}

// TestStudyFiles reads studies from <results dir>/studies/<id>/study.json.
func TestStudyFiles(t *testing.T) {
	dir := t.TempDir()
	for id, s := range fixtureStudies() {
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "studies", id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "studies", id, "study.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Compare(context.Background(), studyload.Files{Dir: dir}, fixtureAggs(), "s1:p00", "s1:p01", false)
	if err != nil {
		t.Fatal(err)
	}
	if f := figure(t, rep, 0, study.FigureJPerOutputToken); !f.Significant {
		t.Errorf("from files: %+v", f)
	}
	// An id that is no study is an experiment id.
	if _, err := Compare(context.Background(), studyload.Files{Dir: dir}, fixtureAggs(), "e-base", "e-lower", false); err != nil {
		t.Errorf("experiments beside studies: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "studies", "s2", "study.json"), []byte(`{"kind":"raw"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Compare(context.Background(), studyload.Files{Dir: dir}, fixtureAggs(), "s2:p00", "s1:p01", false)
	if err == nil || !strings.Contains(err.Error(), `study.json: not a study aggregate of schema 1 (kind "raw"`) {
		t.Errorf("a bad study file: %v", err)
	}
}

// TestConstantSamplesEncode: two constant samples that differ give an infinite t, which JSON
// cannot hold: it is null, and the report still encodes.
func TestConstantSamplesEncode(t *testing.T) {
	f := compareFigure("output_tokens", []float64{128, 128, 128}, []float64{120, 120, 120})
	if f.Welch == nil || f.Welch.T != nil || !f.Significant {
		t.Errorf("constant samples: %+v", f)
	}
	if _, err := json.Marshal(f); err != nil {
		t.Errorf("encode: %v", err)
	}
	g := compareFigure("output_tokens", []float64{128, 128, 128}, []float64{128, 128, 128})
	if g.Significant || g.HedgesG != nil {
		t.Errorf("equal constant samples: %+v", g)
	}
	if _, err := json.Marshal(g); err != nil {
		t.Errorf("encode: %v", err)
	}
}

// TestConstantWithinRoundingIsNot: two constant samples of one truth that differ only by float
// rounding (40 W computed in two orders) are no difference, and the verdict says why; two
// constant samples that really differ are a difference, and the verdict says it is exact.
func TestConstantWithinRoundingIsNot(t *testing.T) {
	w, third := 40.0, 3.0
	x := w / third * third // 40 up to the last bit
	f := compareFigure(study.FigurePowerW, []float64{40, 40, 40}, []float64{x, x * (1 + 1e-12), x})
	if f.Significant || f.Welch == nil || !f.Welch.NoVariance || !f.Welch.WithinRounding || f.Welch.P != 1 || f.DiffCI95 == nil || !f.DiffCI95.Contains(0) {
		t.Errorf("40 W against 40 W within rounding: %+v (welch %+v)", f, f.Welch)
	}
	if !strings.HasPrefix(f.Verdict, "no significant difference: no variance; the difference is within rounding (|B − A| = ") {
		t.Errorf("verdict %q", f.Verdict)
	}
	if _, err := json.Marshal(f); err != nil {
		t.Errorf("encode: %v", err)
	}
	g := compareFigure(study.FigurePowerW, []float64{40, 40, 40}, []float64{40.001, 40.001, 40.001})
	if !g.Significant || g.Welch == nil || !g.Welch.NoVariance || g.Welch.WithinRounding {
		t.Errorf("40 W against 40.001 W: %+v (welch %+v)", g, g.Welch)
	}
	if !strings.Contains(g.Verdict, "higher; significant: no variance; the difference is exact") {
		t.Errorf("verdict %q", g.Verdict)
	}
}

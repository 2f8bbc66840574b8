package reportcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/aggregate"
	"github.com/lemctl/lemctl/host/cli/comparecmd"
	"github.com/lemctl/lemctl/host/cli/studyload"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/report"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
	"github.com/lemctl/lemctl/host/study"
	"github.com/lemctl/lemctl/sdk"
)

// repo is host/aggregate's fixture tree with two-gpus and shared-package aggregated.
func repo(t *testing.T) *resultstest.Memory {
	t.Helper()
	r, err := resultstest.LoadTree("../../aggregate/testdata/results")
	if err != nil {
		t.Fatal(err)
	}
	for _, exp := range []string{"two-gpus", "shared-package"} {
		if _, err := aggregate.Run(context.Background(), r, exp, aggregate.Options{LemctlVersion: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func execute(t *testing.T, r sdk.Repository, resultsDir string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	f := &cliutil.Factory{Out: &out, Err: &errb, ResultsDir: resultsDir,
		Repository: func(context.Context) (sdk.Repository, error) { return r, nil }}
	cmd := NewCommand(f)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), cliutil.CodeOf(err)
}

func readPage(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if refs := report.NetworkRefs(b); len(refs) > 0 {
		t.Errorf("%s references %q", path, refs)
	}
	return string(b)
}

func TestReportExperiment(t *testing.T) {
	dir := t.TempDir()
	out, errs, code := execute(t, repo(t), dir, "two-gpus")
	want := filepath.Join(dir, "reports", "two-gpus.html")
	if code != 0 || out != "report: "+want+"\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	page := readPage(t, want)
	for _, s := range []string{`id="timeline"`, `id="provenance"`, "Experiment two-gpus", `class="chart"`} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %s", s)
		}
	}
	// -o names the file.
	other := filepath.Join(dir, "elsewhere", "r.html")
	if out, errs, code := execute(t, repo(t), dir, "two-gpus", "-o", other); code != 0 || out != "report: "+other+"\n" {
		t.Fatalf("-o: exit %d, %q %q", code, out, errs)
	}
	readPage(t, other)
}

func TestReportCompare(t *testing.T) {
	dir := t.TempDir()
	out, errs, code := execute(t, repo(t), dir, "--compare", "two-gpus", "shared-package")
	want := filepath.Join(dir, "reports", "two-gpus-vs-shared-package.html")
	if code != 0 || out != "report: "+want+"\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	page := readPage(t, want)
	if !strings.Contains(page, `id="differences"`) || !strings.Contains(page, "Compare A two-gpus and B shared-package") {
		t.Error("compare page lacks its differences")
	}
	// Every verdict is `lemctl compare two-gpus shared-package`'s, word for word.
	r := repo(t)
	load := studyload.Aggregates{Repo: r}
	a, err := load.LoadAggregate(context.Background(), "two-gpus")
	if err != nil {
		t.Fatal(err)
	}
	b, err := load.LoadAggregate(context.Background(), "shared-package")
	if err != nil {
		t.Fatal(err)
	}
	figs := comparecmd.CompareExperiments(a, b)
	if len(figs) == 0 {
		t.Fatal("the fixtures have no figure to compare")
	}
	for _, f := range figs {
		if !strings.Contains(page, html.EscapeString(f.Verdict)) {
			t.Errorf("compare page lacks compare's verdict on %s: %q", f.Figure, f.Verdict)
		}
	}
	if !strings.Contains(page, "Hedges") {
		t.Error("compare page lacks Hedges' g")
	}
}

func TestReportStudy(t *testing.T) {
	dir := t.TempDir()
	s := &study.Aggregate{SchemaVersion: study.SchemaVersion, Kind: study.Kind, StudyID: "st-1", Cycles: 2,
		Axes: []study.Axis{{Key: "workload.batch_size", Values: []any{1.0, 2.0}}}, State: results.StateCompleted}
	for i, b := range []float64{1, 2} {
		s.Points = append(s.Points, study.PointAggregate{ID: []string{"p00", "p01"}[i], Settings: map[string]any{"workload.batch_size": b}, Valid: true,
			Experiments: []string{"e1", "e2"}, Figures: map[string]*results.Stats{
				study.FigureJPerOutputToken:  results.NewStats([]float64{2 / b, 2.1 / b}),
				study.FigureOutputTokensPerS: results.NewStats([]float64{100 * b, 101 * b}),
			}})
	}
	data, _ := json.Marshal(s)
	if err := os.MkdirAll(filepath.Dir(studyload.Files{Dir: dir}.Path("st-1")), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(studyload.Files{Dir: dir}.Path("st-1"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := execute(t, repo(t), dir, "st-1")
	want := filepath.Join(dir, "reports", "st-1.html")
	if code != 0 || out != "report: "+want+"\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	page := readPage(t, want)
	if !strings.Contains(page, `id="frontier"`) || !strings.Contains(page, "Study st-1") {
		t.Error("study page lacks its frontier")
	}
	// The page marks `lemctl frontier st-1`'s decision: p01 uses less energy at more throughput.
	if !strings.Contains(page, "Recommended: p01, the valid point of lowest mean energy per output token") {
		t.Error("study page does not recommend lemctl frontier's point p01")
	}
	fr := StudyFrontier(s)
	if strings.Join(fr.Points, ",") != "p01" || fr.Recommended != "p01" {
		t.Errorf("frontier %+v, want p01 alone and recommended", fr)
	}
	// A study file of another kind is an error naming it.
	if err := os.WriteFile(studyload.Files{Dir: dir}.Path("st-1"), []byte(`{"schema_version":"9","kind":"study"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := execute(t, repo(t), dir, "st-1"); code != 1 || !strings.Contains(errs, studyload.Files{Dir: dir}.Path("st-1")) || !strings.Contains(errs, `schema_version "9"`) {
		t.Errorf("bad study: exit %d, %q", code, errs)
	}
}

func TestReportErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "got 0 argument(s)"},
		{[]string{"a", "b"}, 2, "or --compare A B"},
		{[]string{"--compare", "a"}, 2, "--compare takes two experiment ids"},
		{[]string{"../x"}, 2, "without a path separator"},
		{[]string{"no-such"}, 1, "no-such is neither a study nor an aggregated experiment"},
		{[]string{"missing-rank"}, 1, "lemctl aggregate missing-rank"},
	} {
		_, errs, code := execute(t, repo(t), dir, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "reports")); !os.IsNotExist(err) {
		t.Errorf("a failed report wrote something: %v", err)
	}
}

func TestSaveRefusesNetworkReferences(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.html")
	err := Save(path, []byte(`<html><img src="https://example.org/x.png"></html>`))
	if cliutil.CodeOf(err) != 1 || !strings.Contains(err.Error(), "https://example.org/x.png") {
		t.Errorf("err %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("written anyway")
	}
}

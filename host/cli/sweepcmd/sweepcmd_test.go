package sweepcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

// parse runs `lemctl sweep ARGS…` up to its options: runF records them and nothing starts.
func parse(t *testing.T, args ...string) (*Options, error) {
	t.Helper()
	var got *Options
	cmd := NewCmdSweep(&cliutil.Factory{}, func(o *Options) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	return got, err
}

func TestOptionsParsing(t *testing.T) {
	o, err := parse(t, "s.toml", "--dry-run", "--progress", "json", "-o", "json")
	if err != nil || o.File != "s.toml" || !o.DryRun || o.Progress != "json" || o.Output != "json" || o.Resume != "" {
		t.Fatalf("options %+v, %v", o, err)
	}
	o, err = parse(t, "--resume", "20261203T000000Z-s-abcdef")
	if err != nil || o.Resume != "20261203T000000Z-s-abcdef" || o.File != "" || o.Progress != "text" || o.Output != "table" {
		t.Fatalf("resume options %+v, %v", o, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "needs a study file"},
		{[]string{"s.toml", "--resume", "x"}, "not both"},
		{[]string{"s.toml", "--progress", "loud"}, "--progress"},
	} {
		_, err := parse(t, tc.args...)
		if cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v (exit %d), want a usage error with %q", tc.args, err, cliutil.CodeOf(err), tc.want)
		}
	}
}

// The example study parses: its base exists and its grid has the three batch sizes.
func TestExampleStudyParses(t *testing.T) {
	f, _, err := study.ReadFile("../../../examples/studies/batch-size.toml")
	if err != nil {
		t.Fatal(err)
	}
	pts := f.PointList()
	if len(pts) != 3 || pts[2].Label() != "workload.batch_size=16" || f.Cycles != 3 || f.Order != study.OrderInterleaved {
		t.Errorf("example study: %d points %v, cycles %d, order %s", len(pts), pts, f.Cycles, f.Order)
	}
}

func TestReportFlag(t *testing.T) {
	o, err := parse(t, "s.toml", "--report")
	if err != nil || !o.Report {
		t.Fatalf("--report: options %+v, %v", o, err)
	}
	if o, err = parse(t, "s.toml"); err != nil || o.Report {
		t.Fatalf("without --report: options %+v, %v", o, err)
	}
}

// twoPoints is a completed study of two points; p01 uses less energy at more throughput.
func twoPoints() *study.Aggregate {
	a := &study.Aggregate{SchemaVersion: study.SchemaVersion, Kind: study.Kind, StudyID: "st-1", Cycles: 2,
		Axes: []study.Axis{{Key: "workload.batch_size", Values: []any{1.0, 2.0}}}, State: results.StateCompleted}
	for i, b := range []float64{1, 2} {
		a.Points = append(a.Points, study.PointAggregate{ID: []string{"p00", "p01"}[i], Settings: map[string]any{"workload.batch_size": b}, Valid: true,
			Experiments: []string{"e1", "e2"}, Figures: map[string]*results.Stats{
				study.FigureJPerOutputToken:  results.NewStats([]float64{2 / b, 2.1 / b}),
				study.FigureOutputTokensPerS: results.NewStats([]float64{100 * b, 101 * b}),
			}})
	}
	return a
}

func TestStudyReport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "reports", "st-1.html")
	var out bytes.Buffer
	// Without --report: the line says how to make it, and nothing is written.
	if err := studyReport(&out, false, dir, twoPoints()); err != nil {
		t.Fatal(err)
	}
	if want := "report: `lemctl report st-1 --results-dir " + dir + "` writes " + path + "\n"; out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("report written without --report: %v", err)
	}
	// With --report: the page `lemctl report st-1` writes, with lemctl frontier's recommendation.
	out.Reset()
	if err := studyReport(&out, true, dir, twoPoints()); err != nil {
		t.Fatal(err)
	}
	if out.String() != "report: "+path+"\n" {
		t.Errorf("printed %q, want the report's path", out.String())
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "Study st-1") || !strings.Contains(string(page), "Recommended: p01") {
		t.Error("the study report lacks its study or lemctl frontier's recommended point")
	}
}

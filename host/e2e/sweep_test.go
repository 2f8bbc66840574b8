package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

// meterTable is the example meter counting one node domain at a power the study sets.
const meterTable = `
[energy]
meters = ["example-meter"]

[energy.example-meter]
domains = ["node0:node:node"]
power_w = 100.0
update_period = "5ms"
interval = "10ms"
`

// writeStudy writes base (as base.toml) and the study file into a new directory and returns the
// study file's path and the results directory.
func writeStudy(t *testing.T, base, studyText string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "base.toml"), []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "study.toml")
	if err := os.WriteFile(path, []byte(studyText), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	if err := os.MkdirAll(res, 0o755); err != nil {
		t.Fatal(err)
	}
	return path, res
}

func studyIDs(t *testing.T, res string) []string {
	t.Helper()
	ids, err := study.List(res)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func loadStudy(t *testing.T, res, id string) (*study.Aggregate, *study.Manifest) {
	t.Helper()
	a, _, err := study.Load(res, id)
	if err != nil {
		t.Fatal(err)
	}
	m, err := study.LoadManifest(res, id)
	if err != nil {
		t.Fatal(err)
	}
	return a, m
}

// checkMeans asserts that every figure of every point is the mean (and the values, in cycle
// order) of the point's experiments' aggregates.
func checkMeans(t *testing.T, res string, a *study.Aggregate) {
	t.Helper()
	for _, p := range a.Points {
		var aggs []*results.Aggregated
		for _, exp := range p.Experiments {
			aggs = append(aggs, readAggregated(t, res, exp))
		}
		for _, name := range study.Figures {
			var vals []float64
			for _, ag := range aggs {
				if v := study.FiguresOf(ag)[name]; v != nil {
					vals = append(vals, *v)
				}
			}
			st := p.Figures[name]
			if st == nil || st.N != len(vals) || !reflect.DeepEqual(st.Values, append([]float64{}, vals...)) {
				t.Errorf("point %s %s: stats %+v, experiments give %v", p.ID, name, st, vals)
				continue
			}
			if len(vals) == 0 {
				continue
			}
			sum := 0.0
			for _, v := range vals {
				sum += v
			}
			if mean := sum / float64(len(vals)); st.Mean == nil || math.Abs(*st.Mean-mean) > 1e-9*math.Max(1, math.Abs(mean)) {
				t.Errorf("point %s %s: mean %v, the experiments' mean is %v", p.ID, name, st.Mean, mean)
			}
		}
	}
}

// TestSweepGridOnGPT2Tiny sweeps a 2×2 grid (batch size × the example meter's power) × 3 cycles,
// interleaved, on synthetic:gpt2-tiny: it completes, each point's figures are the mean of its
// three experiments, the counted power is the power the point set, the order is interleaved, and
// `results show|export|list` read the study.
func TestSweepGridOnGPT2Tiny(t *testing.T) {
	onnx := productPlugins(t, "onnx", "fsstore")
	base := `name = "sweep-tiny"

[model]
ref = "synthetic:gpt2-tiny"

[engine]
plugin = "onnx"

[workload]
dataset = "builtin"
prompts = 4
max_new_tokens = 4
max_input_tokens = 32
min_window_s = 0

[workload.decoding]
ignore_eos = true

[launch]
devices = "cpu"
threads = 1

[lifecycle]
baseline_s = 0

[lifecycle.warmup]
mode = "fixed"
batches = 1
` + meterTable
	path, res := writeStudy(t, base, `base = "base.toml"
cycles = 3
order = "interleaved"
[axes]
"workload.batch_size" = [1, 4]
"energy.example-meter.power_w" = [40.0, 160.0]
`)
	r := lemctl(t, nil, "sweep", path, "--plugin-dir", pluginDir, "--plugin-dir", onnx, "--results-dir", res, "--progress", "quiet", "-o", "json", "--report")
	if code := r.wait(t, 15*time.Minute); code != 0 {
		t.Fatalf("sweep exited %d\nstderr:\n%s", code, r.stderr.String())
	}
	ids := studyIDs(t, res)
	if len(ids) != 1 {
		t.Fatalf("studies = %v", ids)
	}
	a, m := loadStudy(t, res, ids[0])
	// --report writes the study's page (lemctl report's, with lemctl frontier's recommendation)
	// and names it on stderr beside -o json.
	reportPath := filepath.Join(res, "reports", ids[0]+".html")
	if !strings.Contains(r.stderr.String(), "report: "+reportPath+"\n") {
		t.Errorf("sweep --report did not name %s on stderr:\n%s", reportPath, r.stderr.String())
	}
	if page, err := os.ReadFile(reportPath); err != nil || !strings.Contains(string(page), "Recommended: ") {
		t.Errorf("sweep --report: %v, or the page has no recommended point", err)
	}
	// The example meter reports no temperature: the gap is a plain pause, said once, and no
	// thermal wait is recorded.
	if n := strings.Count(r.stderr.String(), "no selected meter reports a temperature: the gap between experiments is a plain pause"); n != 1 {
		t.Errorf("the plain-pause note was said %d times, want once:\n%s", n, r.stderr.String())
	}
	for _, run := range m.Runs {
		if run.ThermalWait != nil || m.ThermalReferenceC != nil {
			t.Errorf("a thermal wait without temperatures: run %+v, reference %v", run, m.ThermalReferenceC)
		}
	}
	var printed study.Aggregate
	if err := json.Unmarshal(r.stdout.Bytes(), &printed); err != nil || printed.StudyID != a.StudyID {
		t.Errorf("-o json printed %q (%v), want the stored study", r.stdout.String(), err)
	}
	if a.State != results.StateCompleted || len(a.Points) != 4 || a.Cycles != 3 || a.Order != study.OrderInterleaved || len(a.Axes) != 2 {
		t.Fatalf("study = state %s, %d points, %d cycles, order %s", a.State, len(a.Points), a.Cycles, a.Order)
	}
	for _, p := range a.Points {
		if len(p.Experiments) != 3 {
			t.Errorf("point %s: %d experiments, want 3", p.ID, len(p.Experiments))
		}
		// The truth: the meter counts the power the point set over the window.
		want, _ := p.Settings["energy.example-meter.power_w"].(float64)
		pw := p.Figures[study.FigurePowerW]
		if pw.Mean == nil || math.Abs(*pw.Mean-want) > 0.15*want {
			t.Errorf("point %s: power %v W, the meter was set to %v W", p.ID, pw.Mean, want)
		}
		for _, exp := range p.Experiments {
			ag := readAggregated(t, res, exp)
			if got, want := *ag.Workload.BatchSize, p.Settings["workload.batch_size"]; float64(got) != want {
				t.Errorf("point %s experiment %s ran batch size %d, the point set %v", p.ID, exp, got, want)
			}
		}
	}
	checkMeans(t, res, a)
	// Interleaved: cycle 1 of every point, then cycle 2, then cycle 3.
	var got []string
	for _, run := range m.Runs {
		got = append(got, run.Point+"/"+string(rune('0'+run.Cycle)))
	}
	want := []string{"p00/1", "p01/1", "p02/1", "p03/1", "p00/2", "p01/2", "p02/2", "p03/2", "p00/3", "p01/3", "p02/3", "p03/3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runs ran in the order %v, want %v", got, want)
	}

	show := lemctl(t, nil, "results", "show", a.StudyID, "--results-dir", res, "--plugin-dir", pluginDir)
	if code := show.wait(t, time.Minute); code != 0 || !strings.Contains(show.stdout.String(), "p03") || !strings.Contains(show.stdout.String(), "J/TOKEN") {
		t.Errorf("results show exited %d:\n%s\n%s", code, show.stdout.String(), show.stderr.String())
	}
	exp := lemctl(t, nil, "results", "export", a.StudyID, "--results-dir", res, "--plugin-dir", pluginDir)
	if code := exp.wait(t, time.Minute); code != 0 {
		t.Fatalf("results export exited %d: %s", code, exp.stderr.String())
	}
	rows, err := csv.NewReader(strings.NewReader(exp.stdout.String())).ReadAll()
	if err != nil || len(rows) != 5 || rows[1][1] != "p00" {
		t.Errorf("export: %d rows (%v), want a header and one row per point:\n%s", len(rows), err, exp.stdout.String())
	}
	list := lemctl(t, nil, "results", "list", "--results-dir", res, "--plugin-dir", pluginDir)
	if code := list.wait(t, time.Minute); code != 0 || !strings.Contains(list.stdout.String(), a.StudyID) {
		t.Errorf("results list exited %d and lacks the study:\n%s", code, list.stdout.String())
	}
	checkCompareAndFrontier(t, res, a)
}

// sweepBase is a quick experiment on the example plugins with the example meter.
func sweepBase() string {
	return strings.Replace(experiment("sweep", 1, meterTable), "prompts = 16", "prompts = 8", 1)
}

// TestSweepResumeRunsOnlyTheMissingCycles interrupts a sweep after its first experiment, then
// resumes it: only the point × cycles not completed run, the completed ones keep their
// experiments, and the final study has the structure of an uninterrupted one.
func TestSweepResumeRunsOnlyTheMissingCycles(t *testing.T) {
	studyText := `base = "base.toml"
cycles = 3
order = "grouped"
[axes]
"energy.example-meter.power_w" = [50.0, 200.0]
`
	path, res := writeStudy(t, sweepBase(), studyText)
	args := []string{"--plugin-dir", pluginDir, "--results-dir", res, "--progress", "quiet"}
	r := lemctl(t, nil, append([]string{"sweep", path}, args...)...)
	// Wait for the first completed experiment in the study's manifest, then Ctrl-C.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var id string
	for id == "" {
		if ids := studyIDs(t, res); len(ids) == 1 {
			if m, err := study.LoadManifest(res, ids[0]); err == nil {
				for _, run := range m.Runs {
					if run.State == results.StateCompleted {
						id = ids[0]
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no experiment completed\nstderr:\n%s", r.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 2*time.Minute); code != 130 {
		t.Fatalf("sweep exited %d after SIGINT, want 130\nstderr:\n%s", code, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "lemctl sweep --resume "+id) {
		t.Errorf("the interrupted sweep does not say how to resume:\n%s", r.stderr.String())
	}
	_, before := loadStudy(t, res, id)
	if before.State != results.StateInterrupted {
		t.Errorf("interrupted study state %q", before.State)
	}
	done := map[string]string{} // point/cycle → experiment
	for _, run := range before.Runs {
		if run.State == results.StateCompleted {
			done[run.Point+"/"+string(rune('0'+run.Cycle))] = run.ExperimentID
		}
	}
	if len(done) == 0 || len(done) == 6 {
		t.Fatalf("%d of 6 experiments completed before the interrupt; the test needs some but not all", len(done))
	}
	if ps := pluginProcesses(); len(ps) > 0 {
		t.Errorf("plugin processes left after the interrupt: %v", ps)
	}

	rs := lemctl(t, nil, append([]string{"sweep", "--resume", id}, args...)...)
	if code := rs.wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("resume exited %d\nstderr:\n%s", code, rs.stderr.String())
	}
	a, after := loadStudy(t, res, id)
	if a.State != results.StateCompleted || after.Resumed != 1 {
		t.Errorf("resumed study: state %s, resumed %d", a.State, after.Resumed)
	}
	newRuns := after.Runs[len(before.Runs):]
	if len(newRuns) != 6-len(done) {
		t.Errorf("resume ran %d experiments, want only the %d missing", len(newRuns), 6-len(done))
	}
	for _, run := range newRuns {
		if _, was := done[run.Point+"/"+string(rune('0'+run.Cycle))]; was {
			t.Errorf("resume ran %s cycle %d again", run.Point, run.Cycle)
		}
	}
	for _, p := range a.Points {
		for c, exp := range p.Experiments {
			if prev, ok := done[p.ID+"/"+string(rune('1'+c))]; ok && prev != exp {
				t.Errorf("point %s cycle %d: experiment %s replaced the completed %s", p.ID, c+1, exp, prev)
			}
		}
	}
	checkMeans(t, res, a)

	// An uninterrupted sweep of the same study has the same structure.
	path2, res2 := writeStudy(t, sweepBase(), studyText)
	u := lemctl(t, nil, "sweep", path2, "--plugin-dir", pluginDir, "--results-dir", res2, "--progress", "quiet")
	if code := u.wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("uninterrupted sweep exited %d\nstderr:\n%s", code, u.stderr.String())
	}
	ua, _ := loadStudy(t, res2, studyIDs(t, res2)[0])
	if shape(a) != shape(ua) {
		t.Errorf("resumed study:\n%s\nuninterrupted:\n%s", shape(a), shape(ua))
	}
}

// shape is a study's structure: its plan and, per point, the settings, config hash, number of
// experiments and the figures with their counts.
func shape(a *study.Aggregate) string {
	var b strings.Builder
	b.WriteString(a.State + " " + a.Order + " " + string(rune('0'+a.Cycles)) + "\n")
	for _, p := range a.Points {
		s, _ := json.Marshal(p.Settings)
		b.WriteString(p.ID + " " + string(s) + " " + p.ConfigHash + " " + string(rune('0'+len(p.Experiments))))
		var names []string
		for n, st := range p.Figures {
			names = append(names, n+"="+string(rune('0'+st.N)))
		}
		sort.Strings(names)
		b.WriteString(" " + strings.Join(names, ",") + "\n")
	}
	return b.String()
}

// TestSweepValidatesEveryPointFirst: a study with bad points runs nothing and names every error
// with its point (exit 2); --dry-run prints the plan and runs nothing.
func TestSweepValidatesEveryPointFirst(t *testing.T) {
	path, res := writeStudy(t, sweepBase(), `base = "base.toml"
[axes]
"workload.batch_size" = [0, 2]
"energy.example-meter.power_w" = [50.0, -3.0]
`)
	r := lemctl(t, nil, "sweep", path, "--plugin-dir", pluginDir, "--results-dir", res)
	if code := r.wait(t, 2*time.Minute); code != 2 {
		t.Fatalf("sweep exited %d, want 2\nstderr:\n%s", code, r.stderr.String())
	}
	for _, want := range []string{"point p00: workload.batch_size", "point p01: workload.batch_size", "point p03: energy.example-meter.power_w"} {
		if !strings.Contains(r.stderr.String(), want) {
			t.Errorf("errors lack %q:\n%s", want, r.stderr.String())
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(res, "runs")); len(ents) != 0 || len(studyIDs(t, res)) != 0 {
		t.Errorf("an invalid study ran something: %v", ents)
	}

	path, res = writeStudy(t, sweepBase(), `base = "base.toml"
cycles = 2
order = "shuffled"
seed = 3
[[points]]
"workload.batch_size" = 1
[[points]]
"workload.batch_size" = 8
`)
	d := lemctl(t, nil, "sweep", path, "--dry-run", "-o", "json", "--plugin-dir", pluginDir, "--results-dir", res)
	if code := d.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("dry run exited %d\nstderr:\n%s", code, d.stderr.String())
	}
	var plan struct {
		Points []struct {
			ID         string `json:"id"`
			ConfigHash string `json:"config_hash"`
		} `json:"points"`
		Schedule []study.Slot `json:"schedule"`
		ToRun    int          `json:"to_run"`
	}
	if err := json.Unmarshal(d.stdout.Bytes(), &plan); err != nil || len(plan.Points) != 2 || len(plan.Schedule) != 4 || plan.ToRun != 4 {
		t.Errorf("plan = %+v (%v)\n%s", plan, err, d.stdout.String())
	}
	if ents, _ := os.ReadDir(filepath.Join(res, "runs")); len(ents) != 0 || len(studyIDs(t, res)) != 0 {
		t.Errorf("--dry-run ran something: %v", ents)
	}
	// The thermal wait's keys are validated with the study file and the key named.
	path, res = writeStudy(t, sweepBase(), `base = "base.toml"
thermal_tolerance_c = -1
thermal_max_wait_s = 7200
[[points]]
"workload.batch_size" = 1
`)
	b := lemctl(t, nil, "sweep", path, "--plugin-dir", pluginDir, "--results-dir", res)
	if code := b.wait(t, 2*time.Minute); code != 2 {
		t.Fatalf("sweep with bad thermal keys exited %d, want 2\nstderr:\n%s", code, b.stderr.String())
	}
	for _, want := range []string{path + ": thermal_tolerance_c: -1 (valid: a number of °C in (0, 50])", path + ": thermal_max_wait_s: 7200 (valid: a number of seconds in [0, 3600]; 0 disables the thermal wait)"} {
		if !strings.Contains(b.stderr.String(), want) {
			t.Errorf("errors lack %q:\n%s", want, b.stderr.String())
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(res, "runs")); len(ents) != 0 || len(studyIDs(t, res)) != 0 {
		t.Errorf("an invalid study ran something: %v", ents)
	}
}

// TestSweepExampleStudyDryRun checks examples/studies/batch-size.toml against the product
// plugins with --dry-run.
func TestSweepExampleStudyDryRun(t *testing.T) {
	onnx := productPlugins(t, "onnx", "fsstore")
	res := t.TempDir()
	r := lemctl(t, nil, "sweep", filepath.Join(repoRoot, "examples", "studies", "batch-size.toml"), "--dry-run", "--plugin-dir", onnx, "--results-dir", res)
	if code := r.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("dry run exited %d\nstderr:\n%s", code, r.stderr.String())
	}
	for _, want := range []string{"3 points × 3 cycles = 9 experiments", "workload.batch_size=16"} {
		if !strings.Contains(r.stdout.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, r.stdout.String())
		}
	}
}

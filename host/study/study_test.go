package study_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

func writeBase(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tiny.toml"), []byte("name = \"tiny\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestParseGridInFileOrder(t *testing.T) {
	dir := writeBase(t)
	f, err := study.Parse("s.toml", dir, []byte(`base = "tiny.toml"
cycles = 3
order = "shuffled"
seed = 7
gap_s = 0.5
thermal_tolerance_c = 1.5
thermal_max_wait_s = 0
[axes]
"workload.batch_size" = [1, 4]
energy.example-meter.power_w = [10.0, 20.0, 30.0]
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.BasePath != filepath.Join(dir, "tiny.toml") || f.Cycles != 3 || f.Order != study.OrderShuffled || f.Seed != 7 || f.GapS != 0.5 || f.Name != "s" || f.ThermalToleranceC != 1.5 || f.ThermalMaxWaitS != 0 {
		t.Errorf("file = %+v", f)
	}
	if len(f.Axes) != 2 || f.Axes[0].Key != "workload.batch_size" || f.Axes[1].Key != "energy.example-meter.power_w" {
		t.Fatalf("axes = %+v", f.Axes)
	}
	pts := f.PointList()
	if len(pts) != 6 || pts[0].ID != "p00" || pts[5].ID != "p05" {
		t.Fatalf("points = %+v", pts)
	}
	// The first axis varies slowest.
	if got := pts[1].Label(); got != "workload.batch_size=1 energy.example-meter.power_w=20" {
		t.Errorf("p01 = %q", got)
	}
	if got := pts[3].SettingsMap()["workload.batch_size"]; got != int64(4) {
		t.Errorf("p03 batch = %#v", got)
	}
}

func TestParseExplicitPoints(t *testing.T) {
	dir := writeBase(t)
	f, err := study.Parse("s.toml", dir, []byte(`base = "tiny.toml"
[[points]]
"workload.batch_size" = 2
launch.threads = 1
[[points]]
"model.ref" = "synthetic:gpt2-tiny"
`))
	if err != nil {
		t.Fatal(err)
	}
	pts := f.PointList()
	if len(pts) != 2 || pts[0].Label() != "launch.threads=1 workload.batch_size=2" || pts[1].Label() != "model.ref=synthetic:gpt2-tiny" {
		t.Errorf("points = %+v", pts)
	}
	if f.Cycles != 1 || f.Order != study.OrderInterleaved || f.ThermalToleranceC != 2 || f.ThermalMaxWaitS != 300 {
		t.Errorf("defaults: cycles %d order %s thermal tolerance %g max wait %g", f.Cycles, f.Order, f.ThermalToleranceC, f.ThermalMaxWaitS)
	}
}

func TestParseReportsEveryError(t *testing.T) {
	dir := writeBase(t)
	_, err := study.Parse("s.toml", dir, []byte(`base = "missing.toml"
cycles = 0
order = "random"
gap_s = -1
thermal_tolerance_c = 0
thermal_max_wait_s = "long"
colour = "red"
[axes]
"workload.batch_size" = []
`))
	var fe study.FileErrors
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"s.toml: base", "missing.toml", "s.toml: cycles", "[1, 1000]", "s.toml: order", "grouped, interleaved or shuffled", "gap_s", "s.toml: thermal_tolerance_c: 0 (valid: a number of °C in (0, 50])", "s.toml: thermal_max_wait_s: long (valid: a number of seconds in [0, 3600]; 0 disables the thermal wait)", "colour", "unknown key", "axes.workload.batch_size", "non-empty array"} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors lack %q:\n%s", want, msg)
		}
	}
	if _, err := study.Parse("s.toml", dir, []byte("base = \"tiny.toml\"\n")); err == nil || !strings.Contains(err.Error(), "sets no point") {
		t.Errorf("no point: %v", err)
	}
}

func TestSchedule(t *testing.T) {
	g := study.Schedule(2, 2, study.OrderGrouped, 0)
	if want := []study.Slot{{0, 1}, {0, 2}, {1, 1}, {1, 2}}; !reflect.DeepEqual(g, want) {
		t.Errorf("grouped = %v", g)
	}
	i := study.Schedule(2, 2, study.OrderInterleaved, 0)
	if want := []study.Slot{{0, 1}, {1, 1}, {0, 2}, {1, 2}}; !reflect.DeepEqual(i, want) {
		t.Errorf("interleaved = %v", i)
	}
	s1 := study.Schedule(4, 3, study.OrderShuffled, 1)
	s2 := study.Schedule(4, 3, study.OrderShuffled, 1)
	s3 := study.Schedule(4, 3, study.OrderShuffled, 2)
	if !reflect.DeepEqual(s1, s2) {
		t.Error("the same seed gave two orders")
	}
	if reflect.DeepEqual(s1, s3) || reflect.DeepEqual(s1, study.Schedule(4, 3, study.OrderGrouped, 0)) {
		t.Error("shuffled is not shuffled by its seed")
	}
	seen := map[study.Slot]int{}
	for _, x := range s1 {
		seen[x]++
	}
	if len(seen) != 12 {
		t.Errorf("shuffled is not a permutation: %v", s1)
	}
}

func TestBuildIsTheMeanOverCycles(t *testing.T) {
	f := &study.File{Name: "s", Cycles: 3, Order: study.OrderInterleaved, Axes: []study.Axis{{Key: "workload.batch_size", Values: []any{int64(1)}}}}
	pts := f.PointList()
	m := &study.Manifest{StudyID: "sid", Points: pts, ConfigHashes: map[string]string{"p00": "h"}, State: results.StateCompleted,
		Runs: []study.Run{
			{Point: "p00", Cycle: 1, ConfigHash: "h", ExperimentID: "e1", State: results.StateCompleted},
			{Point: "p00", Cycle: 2, ConfigHash: "h", ExperimentID: "e2x", State: results.StateInterrupted},
			{Point: "p00", Cycle: 2, ConfigHash: "h", ExperimentID: "e2", State: results.StateCompleted,
				ThermalWait: &study.ThermalWait{WaitedS: 300, TimedOut: true, Warning: "thermal wait gave up after thermal_max_wait_s = 300 s: gpu0 at 61.0 °C (reference 45.0 °C)"}},
			{Point: "p00", Cycle: 3, ConfigHash: "other", ExperimentID: "e3", State: results.StateCompleted},
		}}
	aggs := map[string]*results.Aggregated{
		"e1": {Energy: results.Energy{TotalJ: results.Float(10), JPerOutputToken: results.Float(0.1)}, Window: results.Window{DurationS: 2}, Validity: results.Validity{Valid: true}},
		"e2": {Energy: results.Energy{TotalJ: results.Float(30), JPerOutputToken: results.Float(0.3)}, Window: results.Window{DurationS: 2, UnionS: results.Float(3)},
			Validity: results.Validity{Valid: false, Findings: []results.Finding{{Code: "x", Severity: results.SeverityError, Message: "bad"}}}},
	}
	a, err := study.Build(m, f, func(id string) (*results.Aggregated, error) { return aggs[id], nil })
	if err != nil {
		t.Fatal(err)
	}
	p := a.Points[0]
	if !reflect.DeepEqual(p.Experiments, []string{"e1", "e2"}) {
		t.Errorf("experiments = %v (the run of another config hash must not count)", p.Experiments)
	}
	j := p.Figures[study.FigureJPerOutputToken]
	if j.N != 2 || math.Abs(*j.Mean-0.2) > 1e-12 || j.Std == nil || math.Abs(*j.Std-math.Sqrt(0.02)) > 1e-12 {
		t.Errorf("j/token stats = %+v", j)
	}
	pw := p.Figures[study.FigurePowerW]
	if pw.N != 2 || pw.Values[0] != 5 || pw.Values[1] != 10 {
		t.Errorf("power = %+v, want 10/2 and 30/3", pw)
	}
	if p.Figures[study.FigureTTFTP50MS].N != 0 || len(p.Figures) != len(study.Figures) {
		t.Errorf("figures = %v", p.Figures)
	}
	if p.Valid {
		t.Error("a point with an invalid experiment is valid")
	}
	codes := ""
	for _, fd := range p.Findings {
		codes += fd.Code + " " + fd.Message + "; "
	}
	if !strings.Contains(codes, "cycle 2 (e2): bad") || !strings.Contains(codes, study.CodeCyclesMissing+" 2 of 3 cycles") ||
		!strings.Contains(codes, study.CodeThermalWaitTimeout+" cycle 2 (e2) started before the temperatures settled: thermal wait gave up after thermal_max_wait_s = 300 s: gpu0 at 61.0 °C (reference 45.0 °C)") ||
		strings.Count(codes, study.CodeThermalWaitTimeout) != 1 {
		t.Errorf("findings = %s", codes)
	}
}

func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a := &study.Aggregate{SchemaVersion: study.SchemaVersion, Kind: study.Kind, StudyID: "20260101T000000Z-s-abcdef", Points: []study.PointAggregate{{ID: "p00"}}}
	if _, _, err := study.Save(dir, a); err != nil {
		t.Fatal(err)
	}
	got, _, err := study.Load(dir, a.StudyID)
	if err != nil || got.Points[0].ID != "p00" {
		t.Fatalf("load = %+v, %v", got, err)
	}
	ids, err := study.List(dir)
	if err != nil || !reflect.DeepEqual(ids, []string{a.StudyID}) {
		t.Errorf("list = %v, %v", ids, err)
	}
	if _, _, err := study.Load(dir, "../x"); err == nil {
		t.Error("a path as a study id was accepted")
	}
}

package resultscmd

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

func storedStudy(t *testing.T) (string, *study.Aggregate) {
	t.Helper()
	dir := t.TempDir()
	f := &study.File{Name: "s", Cycles: 2, Order: study.OrderInterleaved, Axes: []study.Axis{{Key: "workload.batch_size", Values: []any{int64(1), int64(4)}}}}
	m := &study.Manifest{StudyID: "20261203T000000Z-s-abcdef", Points: f.PointList(), ConfigHashes: map[string]string{"p00": "h0", "p01": "h1"},
		State: results.StateCompleted, Runs: []study.Run{
			{Point: "p00", Cycle: 1, ConfigHash: "h0", ExperimentID: "e1", State: results.StateCompleted},
			{Point: "p00", Cycle: 2, ConfigHash: "h0", ExperimentID: "e2", State: results.StateCompleted},
			{Point: "p01", Cycle: 1, ConfigHash: "h1", ExperimentID: "e3", State: results.StateCompleted},
		}}
	j := map[string]float64{"e1": 0.1, "e2": 0.3, "e3": 0.5}
	a, err := study.Build(m, f, func(id string) (*results.Aggregated, error) {
		return &results.Aggregated{Energy: results.Energy{JPerOutputToken: results.Float(j[id])}, Validity: results.Validity{Valid: true}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := study.Save(dir, a); err != nil {
		t.Fatal(err)
	}
	return dir, a
}

func TestShowAndExportAStudy(t *testing.T) {
	dir, a := storedStudy(t)
	var out, errb bytes.Buffer
	f := &cliutil.Factory{Out: &out, Err: &errb, ResultsDir: dir}
	if err := showRun(context.Background(), &ShowOptions{F: f, Exp: a.StudyID, Output: "table"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p00", "p01", "2/2", "1/2", "0.2 ± ", "study_cycles_missing", "1 of 2 cycles completed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := exportRun(context.Background(), &ExportOptions{F: f, Exp: a.StudyID, Format: FormatCSV}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("export rows %v, %v", rows, err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	if rows[1][col["point"]] != "p00" || rows[1][col["set:workload.batch_size"]] != "1" || rows[1][col["j_per_output_token_mean"]] != "0.2" ||
		rows[1][col["j_per_output_token_n"]] != "2" || rows[2][col["completed_cycles"]] != "1" || rows[2][col["j_per_output_token_std"]] != "" {
		t.Errorf("export:\n%v", rows)
	}
	out.Reset()
	if err := exportRun(context.Background(), &ExportOptions{F: f, Exp: a.StudyID, Format: FormatJSON}); err != nil || !strings.Contains(out.String(), `"kind": "study"`) {
		t.Errorf("export json: %v\n%s", err, out.String())
	}
	if err := showRun(context.Background(), &ShowOptions{F: f, Exp: a.StudyID, Raw: true}); cliutil.CodeOf(err) != cliutil.ExitUsage {
		t.Errorf("show --raw of a study: %v", err)
	}
}

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCorruptMarkerStaysPerRank: after a two-worker run, rank 1's completion marker is torn and
// a stray process_00.json appears. Strict aggregation refuses naming rank 1 and its marker file;
// --no-strict aggregates rank 0, and the summary shows the marker_invalid error and the stray
// file's warning.
func TestCorruptMarkerStaysPerRank(t *testing.T) {
	r, res := runExperiment(t, experiment("perrank", 2, noMeters), nil, "--no-aggregate")
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	dir := filepath.Join(res, "raw", exp)
	if err := os.WriteFile(filepath.Join(dir, ".completed_1"), []byte(`{"rank":1,"sha2`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "process_00.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}

	strict := lemctl(t, nil, "aggregate", exp, "--plugin-dir", pluginDir, "--results-dir", res)
	code := strict.wait(t, time.Minute)
	msg := strict.stderr.String()
	if code != 1 || !strings.Contains(msg, "marker_invalid: rank 1") || !strings.Contains(msg, filepath.Join(dir, ".completed_1")) ||
		!strings.Contains(msg, "--no-strict writes a partial aggregate") {
		t.Errorf("strict aggregate exited %d, want 1 naming rank 1, its marker file and --no-strict:\n%s", code, msg)
	}
	if _, err := os.Stat(filepath.Join(res, "aggregated", exp+".json")); err == nil {
		t.Errorf("a refused strict aggregation wrote an aggregate")
	}

	partial := lemctl(t, nil, "aggregate", exp, "--no-strict", "--plugin-dir", pluginDir, "--results-dir", res)
	if code := partial.wait(t, time.Minute); code != 1 {
		t.Errorf("--no-strict aggregate exited %d, want 1 (partial)\n%s", code, partial.stderr.String())
	}
	agg := readAggregated(t, res, exp)
	if !agg.Partial || !slices.Equal(agg.Ranks, []int{0}) || agg.Workload.Requests != 8 {
		t.Errorf("partial aggregate: partial=%v ranks=%v requests=%d; want rank 0's 8 requests", agg.Partial, agg.Ranks, agg.Workload.Requests)
	}
	codes := map[string]string{}
	for _, f := range agg.Validity.Findings {
		codes[f.Code] = f.Message
	}
	if !strings.Contains(codes["marker_invalid"], ".completed_1") || !strings.Contains(codes["stray_file"], "process_00.json") {
		t.Errorf("findings %v, want marker_invalid naming .completed_1 and stray_file naming process_00.json", codes)
	}
	out := partial.stdout.String()
	if !strings.Contains(out, "marker_invalid") || !strings.Contains(out, "stray_file") || !strings.Contains(out, "process_00.json") {
		t.Errorf("the summary does not show the marker error and the stray file:\n%s", out)
	}
}

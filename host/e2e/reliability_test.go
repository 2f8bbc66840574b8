package e2e

import (
	"fmt"
	"os"
	"os/exec"
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

// TestRunChecksBeforeSpawning: what can be checked before a worker starts is, and each failure
// is exit 2 with nothing written: a model.ref path that does not exist, a dataset file that does
// not exist, a results directory below a file, and (root) a results directory on a file system
// too small for the run's estimate.
func TestRunChecksBeforeSpawning(t *testing.T) {
	cases := []struct {
		name  string
		extra []string
		want  []string
	}{
		{"missing model path", []string{"--set", "model.ref=/nonexistent/model"}, []string{"model.ref", "/nonexistent/model", "no such file or directory"}},
		{"missing dataset", []string{"-d", "/nonexistent/prompts.jsonl"}, []string{"workload.dataset", "/nonexistent/prompts.jsonl"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, res := runExperiment(t, experiment("pre", 2, noMeters), nil, tc.extra...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstderr:\n%s", r.code, r.stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr.String())
				}
			}
			if _, err := os.Stat(res); err == nil {
				t.Errorf("a refused run wrote %s", res)
			}
		})
	}
	t.Run("results dir below a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		r, _ := runExperiment(t, experiment("pre", 1, noMeters), nil, "--results-dir", filepath.Join(file, "results"))
		if r.code != 2 || !strings.Contains(r.stderr.String(), file+" is not a directory") {
			t.Errorf("exit %d, want 2 saying %s is not a directory\n%s", r.code, file, r.stderr.String())
		}
	})
	t.Run("results dir too small", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("mounting a tmpfs needs root")
		}
		small := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", small).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", small).Run() })
		r, _ := runExperiment(t, experiment("pre", 2, noMeters), nil, "--results-dir", small)
		if r.code != 2 || !strings.Contains(r.stderr.String(), small+" has ") || !strings.Contains(r.stderr.String(), "the run needs about") {
			t.Errorf("exit %d, want 2 naming %s with the free and needed bytes\n%s", r.code, small, r.stderr.String())
		}
		if ents, _ := os.ReadDir(small); len(ents) != 0 {
			t.Errorf("a refused run wrote into %s: %v", small, ents)
		}
	})
}

// TestRunBoundsEchoesAndConfigSize: a 100 KiB --set value is echoed as 200 characters and its
// size; a config file over 1 MiB is refused naming it, its size and the limit. Both exit 2 and
// write nothing.
func TestRunBoundsEchoesAndConfigSize(t *testing.T) {
	huge := strings.Repeat("z", 100<<10)
	r, res := runExperiment(t, experiment("echo", 1, noMeters), nil, "--set", "workload.order="+huge)
	if r.code != 2 || r.stderr.Len() > 4000 || !strings.Contains(r.stderr.String(), fmt.Sprintf("(%d bytes)", len(huge))) {
		t.Errorf("exit %d with %d bytes of stderr, want 2 with the value cut and its size:\n%.600s", r.code, r.stderr.Len(), r.stderr.String())
	}
	if _, err := os.Stat(res); err == nil {
		t.Errorf("a refused run wrote %s", res)
	}
	big := experiment("big", 1, noMeters) + "# " + strings.Repeat("x", 1<<20) + "\n"
	r, res = runExperiment(t, big, nil)
	if r.code != 2 || !strings.Contains(r.stderr.String(), "experiment.toml") || !strings.Contains(r.stderr.String(), fmt.Sprintf("%d bytes, over the limit of 1048576 bytes", len(big))) {
		t.Errorf("exit %d, want 2 naming the file, its size and the limit:\n%.600s", r.code, r.stderr.String())
	}
	if _, err := os.Stat(res); err == nil {
		t.Errorf("a refused run wrote %s", res)
	}
}

package e2e

import (
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/results"
)

// TestRunWarmupStoppedByItsBound: a cv-mode warm-up whose target no real latency meets (CV below
// 1e-9) stops at max_batches, and says so as a warmup_not_converged warning in every rank's
// validity findings and in the aggregate's, not as a free-text warning.
func TestRunWarmupStoppedByItsBound(t *testing.T) {
	cfg := strings.Replace(experiment("warmup-bound", 1, noMeters), "mode = \"fixed\"\nbatches = 1\n",
		"mode = \"cv\"\ncv_threshold = 1e-9\nmin_batches = 2\nmax_batches = 3\nwindow = 2\nmax_s = 600\n", 1)
	if !strings.Contains(cfg, "max_batches = 3") {
		t.Fatal("the experiment template changed: warm-up bounds not set")
	}
	r, res := runExperiment(t, cfg, nil)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	check := func(what string, v results.Validity) {
		t.Helper()
		var got []results.Finding
		for _, f := range v.Findings {
			if f.Code == "warmup_not_converged" {
				got = append(got, f)
			}
		}
		if len(got) != 1 {
			t.Fatalf("%s: %d warmup_not_converged findings, want 1: %+v", what, len(got), v.Findings)
		}
		f := got[0]
		if f.Severity != results.SeverityWarning || f.Rank == nil || *f.Rank != 0 ||
			!strings.Contains(f.Message, "stopped by lifecycle.warmup.max_batches = 3 after 3 batches") ||
			!strings.Contains(f.Message, "over the last 2 batches, target below 1e-09") {
			t.Errorf("%s: finding %+v", what, f)
		}
	}
	raw := readRaw(t, res, exp, 0)
	check("raw", raw.Validity)
	for _, w := range raw.Warnings {
		if strings.Contains(w.Message, "warmup") || strings.Contains(w.Message, "warm-up") {
			t.Errorf("the warm-up is also a free-text warning: %q", w.Message)
		}
	}
	check("aggregate", readAggregated(t, res, exp).Validity)
}

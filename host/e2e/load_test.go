package e2e

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// TestRunOnnxTinyPoisson runs a poisson load on the onnx engine's Serve (continuous batching):
// every request is sent and comes back with max_new_tokens tokens, never more than
// max_concurrency are in flight, the achieved rate is the one the recorded sends give, and the
// rate_off_target finding is there exactly when those sends are more than 15 % off the target.
// Nothing here depends on how fast the machine is.
func TestRunOnnxTinyPoisson(t *testing.T) {
	plugins := productPlugins(t, "onnx", "fsstore")
	const requests, maxC, maxNew = 20, 4, 8
	cfg := `name = "onnx-poisson"

[model]
ref = "synthetic:gpt2-tiny"

[workload]
dataset = "builtin"
prompts = 6
arrival = "poisson"
rate = 8.0
requests = 20
max_concurrency = 4
max_new_tokens = 8
max_input_tokens = 48
seed = 3

[workload.decoding]
ignore_eos = true
` + quickUnmetered
	r, res := runExperiment(t, cfg, nil, "--plugin-dir", plugins)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	raw := readRaw(t, res, exp, 0)
	l := raw.Load
	if l == nil || l.Path != "serve" || l.Arrival != "poisson" || l.Sent != requests || l.Failed != 0 || len(raw.Requests) != requests {
		t.Fatalf("load %+v with %d requests", l, len(raw.Requests))
	}
	if l.PeakConcurrency > maxC || l.MaxConcurrency != maxC {
		t.Fatalf("peak %d in flight, max_concurrency %d", l.PeakConcurrency, l.MaxConcurrency)
	}
	var sends []int64
	prompts := map[string]int{}
	for _, q := range raw.Requests {
		if q.OutputTokens != maxNew || len(q.TokenMonoNS) != maxNew || q.SendMonoNS == 0 || q.DoneMonoNS < q.SendMonoNS {
			t.Fatalf("request %+v", q)
		}
		if q.SendMonoNS < q.ScheduledMonoNS || q.SendLateNS != q.SendMonoNS-q.ScheduledMonoNS {
			t.Fatalf("request %s sent at %d, scheduled %d, late %d", q.ID, q.SendMonoNS, q.ScheduledMonoNS, q.SendLateNS)
		}
		sends = append(sends, q.SendMonoNS)
		prompts[q.ID]++
	}
	if len(prompts) != 6 {
		t.Fatalf("requests used %d distinct prompts, want the sample's 6 in turn", len(prompts))
	}
	slices.Sort(sends)
	achieved := float64(requests-1) / (float64(sends[len(sends)-1]-sends[0]) / 1e9)
	if math.Abs(*l.AchievedRatePerS-achieved) > 1e-9*achieved {
		t.Fatalf("achieved rate %g, the sends give %g", *l.AchievedRatePerS, achieved)
	}
	off := math.Abs(achieved-8) / 8
	hasFinding := false
	for _, f := range raw.Validity.Findings {
		hasFinding = hasFinding || f.Code == "rate_off_target"
	}
	if hasFinding != (off > 0.15) {
		t.Fatalf("achieved %g req/s is %.1f %% off 8: rate_off_target finding present = %v", achieved, off*100, hasFinding)
	}
	if raw.LatencyMS.TTFT.Count != requests || raw.LatencyMS.ITL.Count != requests*(maxNew-1) {
		t.Fatalf("latency %+v", raw.LatencyMS)
	}
	if raw.Energy.Phases.NotAttributed == "" {
		t.Fatal("phase energy under continuous batching is not marked not attributed")
	}
	agg := readAggregated(t, res, exp)
	if agg.Load == nil || agg.Load.Sent != requests || *agg.Load.AchievedRatePerS != *l.AchievedRatePerS {
		t.Fatalf("aggregate load %+v", agg.Load)
	}
	for _, want := range []string{"poisson arrivals, target 8 req/s", "failures", "none", "steady state"} {
		if !strings.Contains(r.stdout.String(), want) {
			t.Errorf("run summary lacks %q:\n%s", want, r.stdout.String())
		}
	}
}

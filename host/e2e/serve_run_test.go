package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/dataset"
)

// TestRunOpenAIAgainstLemctlServe is the whole served path on this machine: `lemctl serve`
// serves synthetic:gpt2-tiny with the onnx engine, and `lemctl run` measures it through the
// openai engine plugin under a poisson load (4 req/s, 40 requests, at most 8 in flight). Every
// request comes back with its per-token times, the achieved rate is within 15 % of the target,
// and each request's greedy ids — whatever batch it shared on the server — equal `lemctl
// generate`'s for the same prompt.
func TestRunOpenAIAgainstLemctlServe(t *testing.T) {
	plugins := productPlugins(t, "onnx", "openai", "fsstore")
	const requests, maxC, maxNew, prompts = 40, 8, 8, 8
	s := startServe(t, plugins, "synthetic:gpt2-tiny", "", "--max-batch", "8")
	cfg := fmt.Sprintf(`name = "served-poisson"

[model]
plugin = "openai"
ref = "synthetic:gpt2-tiny"
base_url = "%s/v1"
tokenizer = "server"

[engine]
plugin = "openai"

[workload]
dataset = "builtin"
prompts = %d
order = "sequential"
arrival = "poisson"
rate = 4.0
requests = %d
max_concurrency = %d
max_new_tokens = %d
seed = 11

[workload.decoding]
greedy = true
ignore_eos = true
`+quickUnmetered, s.url, prompts, requests, maxC, maxNew)
	r, res := runExperiment(t, cfg, nil, "--plugin-dir", plugins)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	raw := readRaw(t, res, experimentID(t, res), 0)
	l := raw.Load
	if l == nil || l.Path != "serve" || l.Arrival != "poisson" || l.Sent != requests || l.Failed != 0 || len(raw.Requests) != requests {
		t.Fatalf("load %+v with %d requests; want %d sent through Serve, none failed", l, len(raw.Requests), requests)
	}
	if l.PeakConcurrency > maxC {
		t.Errorf("peak %d in flight, above max_concurrency %d", l.PeakConcurrency, maxC)
	}
	if l.AchievedRatePerS == nil || math.Abs(*l.AchievedRatePerS-4)/4 > 0.15 {
		t.Errorf("achieved rate %v req/s, want within 15 %% of 4", l.AchievedRatePerS)
	}
	if raw.LatencyMS.TTFT.Count != requests || raw.LatencyMS.ITL.Count != requests*(maxNew-1) {
		t.Errorf("TTFT over %d requests and ITL over %d gaps; want %d and %d", raw.LatencyMS.TTFT.Count, raw.LatencyMS.ITL.Count, requests, requests*(maxNew-1))
	}
	if raw.LatencyMS.TTFT.P50 == nil || raw.LatencyMS.ITL.P90 == nil || *raw.LatencyMS.ITL.P90 <= 0 {
		t.Errorf("latency distributions missing: %+v", raw.LatencyMS)
	}
	if l.TokenCount["server_ids"] != requests {
		t.Errorf("token counts by source %v; want every request counted from the server's ids", l.TokenCount)
	}

	ds, err := dataset.Open(t.Context(), "builtin", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sample, err := ds.Select(prompts, "sequential", 0)
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{}
	for _, p := range sample {
		texts[p.ID] = p.Text
	}
	served := map[string][]int32{}
	for _, q := range raw.Requests {
		if len(q.OutputIDs) != maxNew || len(q.TokenMonoNS) != maxNew {
			t.Fatalf("request %s: %d ids, %d token times; want %d of each", q.ID, len(q.OutputIDs), len(q.TokenMonoNS), maxNew)
		}
		if prev, ok := served[q.ID]; ok && fmt.Sprint(prev) != fmt.Sprint(q.OutputIDs) {
			t.Errorf("prompt %s served twice with different greedy ids: %v and %v", q.ID, prev, q.OutputIDs)
		}
		served[q.ID] = q.OutputIDs
	}
	if len(served) != prompts {
		t.Fatalf("%d distinct prompts served, want %d", len(served), prompts)
	}
	for id, ids := range served {
		text, ok := texts[id]
		if !ok {
			t.Fatalf("request %s is not one of the sample's prompts", id)
		}
		g := lemctl(t, nil, "generate", "--plugin-dir", plugins, "--model", "synthetic:gpt2-tiny", "--prompt", text,
			"--max-new-tokens", fmt.Sprint(maxNew), "--ignore-eos", "--output", "json")
		if code := g.wait(t, 3*time.Minute); code != 0 {
			t.Fatalf("lemctl generate exited %d:\n%s", code, g.stderr.String())
		}
		var out struct {
			Requests []struct {
				OutputIDs []int32 `json:"output_ids"`
			} `json:"requests"`
		}
		if err := json.Unmarshal(g.stdout.Bytes(), &out); err != nil || len(out.Requests) != 1 {
			t.Fatalf("lemctl generate --output json: %v\n%s", err, g.stdout.String())
		}
		if fmt.Sprint(out.Requests[0].OutputIDs) != fmt.Sprint(ids) {
			t.Errorf("prompt %s: served %v, lemctl generate %v", id, ids, out.Requests[0].OutputIDs)
		}
	}
	t.Logf("achieved %.3f req/s, mean batch %v, TTFT p50 %.1f ms, ITL p50 %.1f ms; %d prompts' ids equal lemctl generate's",
		*l.AchievedRatePerS, deref(l.MeanBatch), *raw.LatencyMS.TTFT.P50, *raw.LatencyMS.ITL.P50, len(served))
	for _, want := range []string{"poisson arrivals, target 4 req/s", "failures"} {
		if !strings.Contains(r.stdout.String(), want) {
			t.Errorf("run summary lacks %q:\n%s", want, r.stdout.String())
		}
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/cli/modelcmd"
	"github.com/lemctl/lemctl/host/dataset"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// productPlugins returns $LEM_BIN/plugins, or skips (fails under CI) when it is not built.
func productPlugins(t *testing.T, names ...string) string {
	t.Helper()
	bin := os.Getenv("LEM_BIN")
	dir := filepath.Join(bin, "plugins")
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, "lem-plugin-"+n)); bin == "" || err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("plugin %s not built under $LEM_BIN=%q", n, bin)
			}
			t.Skipf("plugin %s not built: run `make build` and set LEM_BIN (make test does)", n)
		}
	}
	return dir
}

// TestRunOnnxTinyExactCounts runs synthetic:gpt2-tiny on ONNX Runtime with 2 CPU workers and EOS
// disabled: every request generates exactly max_new_tokens tokens, input tokens are the
// tokenizer's counts (after truncation), the prompts of the ranks partition the sample, and the
// aggregate is the sum of the raw results.
func TestRunOnnxTinyExactCounts(t *testing.T) {
	plugins := productPlugins(t, "onnx", "fsstore")
	const prompts, maxNew, maxIn = 8, 8, 48
	cfg := `name = "onnx-tiny"

[model]
ref = "synthetic:gpt2-tiny"

[engine]
plugin = "onnx"

[workload]
dataset = "builtin"
prompts = 8
batch_size = 4
max_new_tokens = 8
max_input_tokens = 48
min_window_s = 0

[workload.decoding]
ignore_eos = true

[launch]
devices = "cpu"
processes_per_device = 2
` + quickUnmetered
	r, res := runExperiment(t, cfg, nil, "--plugin-dir", plugins)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)

	// The tokenizer's own counts for the sampled prompts.
	ds, err := dataset.Open(context.Background(), "builtin", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sample, err := ds.Select(prompts, "sequential", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := hostclient.Open(ctx, filepath.Join(plugins, "lem-plugin-onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if errs, err := c.Configure(ctx, nil); err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	texts := make([]string, len(sample))
	for i, p := range sample {
		texts[i] = p.Text
	}
	ids, err := c.Loader().Tokenize(ctx, "synthetic:gpt2-tiny", texts)
	if err != nil {
		t.Fatal(err)
	}
	wantIn := map[string]int{}
	for i, p := range sample {
		wantIn[p.ID] = min(len(ids[i]), maxIn)
	}

	seen := map[string]int{}
	var in, out int64
	for rank := 0; rank < 2; rank++ {
		raw := readRaw(t, res, exp, rank)
		in += raw.Workload.InputTokens
		out += raw.Workload.OutputTokens
		for _, q := range raw.Requests {
			seen[q.ID]++
			if q.OutputTokens != maxNew {
				t.Errorf("request %s: %d output tokens, want %d (EOS disabled)", q.ID, q.OutputTokens, maxNew)
			}
			if q.InputTokens != wantIn[q.ID] {
				t.Errorf("request %s: %d input tokens, the tokenizer says %d", q.ID, q.InputTokens, wantIn[q.ID])
			}
		}
		if raw.Engine.Plugin != "onnx" || raw.Provenance.RuntimeVersions["onnxruntime"] == "" {
			t.Errorf("rank %d provenance: engine %+v runtimes %v", rank, raw.Engine, raw.Provenance.RuntimeVersions)
		}
	}
	if len(seen) != prompts {
		t.Errorf("%d distinct prompts measured, want %d", len(seen), prompts)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("prompt %s measured by %d ranks", id, n)
		}
	}
	agg := readAggregated(t, res, exp)
	if agg.Workload.OutputTokens != prompts*maxNew || agg.Workload.OutputTokens != out || agg.Workload.InputTokens != in {
		t.Errorf("aggregate %d in / %d out; raws sum %d / %d; want %d out", agg.Workload.InputTokens, agg.Workload.OutputTokens, in, out, prompts*maxNew)
	}
	if agg.Partial {
		t.Errorf("aggregate is partial: %v", agg.PartialReasons)
	}
}

// TestModelInspectAndTokenize runs `lemctl model` through the onnx loader plugin.
func TestModelInspectAndTokenize(t *testing.T) {
	plugins := productPlugins(t, "onnx")
	r := lemctl(t, nil, "model", "inspect", "synthetic:gpt2-tiny", "--output", "json", "--plugin-dir", plugins)
	if code := r.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("model inspect exited %d\n%s", code, r.stderr.String())
	}
	var a modelcmd.ArtifactJSON
	if err := json.Unmarshal(r.stdout.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	checkSnakeKeys(t, "model inspect -o json", r.stdout.Bytes())
	if a.Architecture != "gpt2" || !a.Synthetic || a.Parameters <= 0 || len(a.SHA256) != 64 || a.FLOPs.PerToken <= 0 {
		t.Errorf("artifact %+v", a)
	}
	// The int4 preset reports its precision, scheme and bytes beside the fp32 one's. Its bytes read
	// per token are under a quarter of fp32's; its stored weights need not be fewer: gpt2-tiny's
	// fp32 embedding (kept for the lookup) outweighs its small matrices, and the tied head adds a
	// quantised copy of it.
	r = lemctl(t, nil, "model", "inspect", "synthetic:gpt2-tiny-q4", "--output", "json", "--plugin-dir", plugins)
	var q modelcmd.ArtifactJSON
	if code := r.wait(t, 2*time.Minute); code != 0 || json.Unmarshal(r.stdout.Bytes(), &q) != nil {
		t.Fatalf("model inspect synthetic:gpt2-tiny-q4 exited %d\n%s", code, r.stderr.String())
	}
	if a.Precision != "fp32" || a.QuantScheme != "none" || q.Precision != "int4" || !strings.HasPrefix(q.QuantScheme, "MatMulNBits 4-bit, block 32") ||
		q.Parameters != a.Parameters || q.FLOPs != a.FLOPs || q.WeightBytes <= 0 ||
		q.BytesPerToken <= 0 || q.BytesPerToken >= a.BytesPerToken/4 {
		t.Errorf("fp32: %s %q %d bytes, %d/token; int4: %s %q %d bytes, %d/token", a.Precision, a.QuantScheme, a.WeightBytes, a.BytesPerToken,
			q.Precision, q.QuantScheme, q.WeightBytes, q.BytesPerToken)
	}
	// "Hello, world!" is [15496, 11, 995, 0] in GPT-2's BPE.
	r = lemctl(t, nil, "model", "tokenize", "synthetic:gpt2-tiny", "Hello, world!", "--plugin-dir", plugins)
	if code := r.wait(t, time.Minute); code != 0 || strings.TrimSpace(r.stdout.String()) != "15496 11 995 0" {
		t.Errorf("model tokenize exited %d: %q", code, r.stdout.String())
	}
	r = lemctl(t, nil, "model", "tokenize", "synthetic:gpt2-tiny", "Hello, world!", "-o", "json", "--plugin-dir", plugins)
	var tok modelcmd.TokenizeJSON
	if code := r.wait(t, time.Minute); code != 0 || json.Unmarshal(r.stdout.Bytes(), &tok) != nil ||
		tok.Tokens != 4 || len(tok.TokenIDs) != 4 || tok.TokenIDs[0] != 15496 {
		t.Errorf("model tokenize -o json exited %d: %s", code, r.stdout.String())
	}
	checkSnakeKeys(t, "model tokenize -o json", r.stdout.Bytes())
	r = lemctl(t, nil, "model", "inspect", "synthetic:nope", "--plugin-dir", plugins)
	if code := r.wait(t, time.Minute); code != 1 || !strings.Contains(r.stderr.String(), "gpt2-tiny") {
		t.Errorf("unknown preset: exit %d, want 1 listing the presets\n%s", code, r.stderr.String())
	}
}

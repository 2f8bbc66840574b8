package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/sdk"
)

var presets = []string{"gpt2-tiny", "llama-tiny"}

// prompts of different lengths, as token ids ("Hello, my name is", "The quick brown fox", "I").
var prompts = [][]int32{{15496, 11, 616, 1438, 318}, {464, 2068, 7586, 21831}, {40}}

func idPrompts(ps ...[]int32) []sdk.Prompt {
	out := make([]sdk.Prompt, len(ps))
	for i, p := range ps {
		out[i] = sdk.Prompt{ID: string(rune('a' + i)), IDs: p}
	}
	return out
}

func greedy(n int) sdk.Decoding { return sdk.Decoding{MaxNewTokens: n, Greedy: true, IgnoreEOS: true} }

// golden is testdata/golden.json: per preset, per prompt, the greedy ids.
type golden map[string][][]int32

func TestGoldenGreedy(t *testing.T) {
	path := filepath.Join("testdata", "golden.json")
	want := golden{}
	if !*update {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
	}
	got := golden{}
	// gpt2-124m is pinned too: the benchmark's model must decode varied ids (≥ 8 distinct in
	// 12), not one token repeated.
	minDistinct := map[string]int{"gpt2-124m": 8}
	for _, p := range append(slices.Clone(presets), "gpt2-124m") {
		t.Run(p, func(t *testing.T) {
			e := load(t, resolve(t, "synthetic:"+p, ""), Settings{})
			res, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts...), Decoding: greedy(12)})
			for i, r := range res {
				got[p] = append(got[p], r.OutputIDs)
				distinct := map[int32]bool{}
				for _, id := range r.OutputIDs {
					distinct[id] = true
				}
				if want := cmp.Or(minDistinct[p], 3); len(distinct) < want {
					t.Errorf("prompt %d: %v has %d distinct tokens, want ≥ %d", i, r.OutputIDs, len(distinct), want)
				}
				if !*update && (len(want[p]) <= i || !slices.Equal(r.OutputIDs, want[p][i])) {
					t.Errorf("prompt %d: greedy ids %v, golden %v", i, r.OutputIDs, want[p])
				}
			}
		})
	}
	if *update {
		raw, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSeededSampling(t *testing.T) {
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), Settings{})
	cases := []struct {
		name string
		d    sdk.Decoding
	}{
		{"temperature", sdk.Decoding{Temperature: 1, TopP: 1}},
		{"top-k", sdk.Decoding{Temperature: 0.8, TopK: 20, TopP: 1}},
		{"top-p", sdk.Decoding{Temperature: 1.2, TopP: 0.9}},
		{"top-k and top-p", sdk.Decoding{Temperature: 1, TopK: 50, TopP: 0.5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := func(seed uint64) [][]int32 {
				d := c.d
				d.MaxNewTokens, d.IgnoreEOS, d.Seed = 16, true, seed
				res, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts...), Decoding: d})
				var ids [][]int32
				for _, r := range res {
					ids = append(ids, r.OutputIDs)
				}
				return ids
			}
			a, b, other := run(7), run(7), run(8)
			if !slices.EqualFunc(a, b, slices.Equal) {
				t.Errorf("seed 7 twice: %v then %v", a, b)
			}
			if slices.EqualFunc(a, other, slices.Equal) {
				t.Errorf("seeds 7 and 8 sampled the same ids %v", a)
			}
		})
	}
}

// recorder returns a hook that keeps every step's logits.
func recorder(e *Engine) *[][][]float32 {
	var steps [][][]float32
	e.onStep = func(_ int, lg [][]float32) { steps = append(steps, lg) }
	return &steps
}

// TestKVCacheEqualsRecompute: in a left-padded batch, each row's logits at every step equal a
// full recompute of that row's sequence alone, without any cache, by testenv's independent
// decoder.
func TestKVCacheEqualsRecompute(t *testing.T) {
	for _, p := range presets {
		t.Run(p, func(t *testing.T) {
			a := resolve(t, "synthetic:"+p, "")
			e := load(t, a, Settings{})
			steps := recorder(e)
			res, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[0], prompts[2]), Decoding: greedy(10)})
			d := testenv.NewDecoder(t, a.Metadata["model_dir"])
			for i, r := range res {
				seq := toInt64(prompts[[]int{0, 2}[i]])
				for k := range r.OutputIDs {
					full := d.Step(t, d.Empty(1), [][]int64{seq}, [][]int64{testenv.Ones(len(seq))})[0][len(seq)-1]
					if diff := testenv.MaxDiff(full, (*steps)[k][i]); diff > 1e-4 {
						t.Fatalf("row %d step %d: KV-cache logits differ from a full recompute by %g", i, k, diff)
					}
					if got := testenv.Argmax(full); got != int64(r.OutputIDs[k]) {
						t.Fatalf("row %d step %d: recompute argmax %d, engine chose %d", i, k, got, r.OutputIDs[k])
					}
					seq = append(seq, int64(r.OutputIDs[k]))
				}
			}
		})
	}
}

func toInt64(ids []int32) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

// TestBatchEqualsAlone: prompts of different lengths in one batch give each the logits and
// greedy ids it gets alone.
func TestBatchEqualsAlone(t *testing.T) {
	for _, p := range presets {
		t.Run(p, func(t *testing.T) {
			e := load(t, resolve(t, "synthetic:"+p, ""), Settings{})
			steps := recorder(e)
			batch, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts...), Decoding: greedy(8)})
			batchSteps := *steps
			for i, pr := range prompts {
				*steps = nil
				alone, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(pr), Decoding: greedy(8)})
				if !slices.Equal(alone[0].OutputIDs, batch[i].OutputIDs) {
					t.Errorf("prompt %d: alone %v, in the batch %v", i, alone[0].OutputIDs, batch[i].OutputIDs)
				}
				for k := range *steps {
					if diff := testenv.MaxDiff((*steps)[k][0], batchSteps[k][i]); diff > 1e-4 {
						t.Errorf("prompt %d step %d: batch logits differ from alone by %g", i, k, diff)
					}
				}
			}
		})
	}
}

// TestEOS: with the EOS id set to a token that prompt 0 produces at step k (and prompt 1
// never does), prompt 0 stops with exactly k tokens, the EOS counted once, and prompt 1 goes on.
func TestEOS(t *testing.T) {
	for _, p := range presets {
		t.Run(p, func(t *testing.T) {
			a := resolve(t, "synthetic:"+p, "")
			const n = 12
			free := load(t, a, Settings{})
			ref, _, _ := collect(t, free, sdk.GenerateRequest{Prompts: idPrompts(prompts[0], prompts[1]), Decoding: greedy(n)})
			k, eos := 0, int32(-1)
			for j := 2; j < n; j++ { // step k ≥ 3: a stop in the middle of the sequence
				id := ref[0].OutputIDs[j]
				if !slices.Contains(ref[0].OutputIDs[:j], id) && !slices.Contains(ref[1].OutputIDs, id) {
					k, eos = j+1, id
					break
				}
			}
			if k == 0 {
				t.Fatalf("no usable EOS candidate in %v / %v", ref[0].OutputIDs, ref[1].OutputIDs)
			}
			a2 := *a
			a2.EOSTokenIDs = []int32{eos}
			e := load(t, &a2, Settings{})
			d := sdk.Decoding{MaxNewTokens: n, Greedy: true}
			res, bt, order := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[0], prompts[1]), Decoding: d})
			if got := res[0]; len(got.OutputIDs) != k || got.FinishReason != "eos" || got.OutputIDs[k-1] != eos || len(got.TokenMonoNS) != k {
				t.Errorf("EOS %d at step %d: request 0 has %d tokens %v (%s), want %d ending in EOS", eos, k, len(got.OutputIDs), got.OutputIDs, got.FinishReason, k)
			}
			if got := res[1]; len(got.OutputIDs) != n || got.FinishReason != "length" || !slices.Equal(got.OutputIDs, ref[1].OutputIDs) {
				t.Errorf("request 1 = %v (%s), want it to go on to %v", got.OutputIDs, got.FinishReason, ref[1].OutputIDs)
			}
			if !slices.Equal(order, []int{0, 1}) {
				t.Errorf("emit order %v, want the request that finished first first", order)
			}
			if bt.OutputTokens != k+n || bt.Steps != n-1 {
				t.Errorf("batch: %d output tokens, %d steps; want %d and %d", bt.OutputTokens, bt.Steps, k+n, n-1)
			}
			d.IgnoreEOS = true
			res, _, _ = collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[0]), Decoding: d})
			if len(res[0].OutputIDs) != n || res[0].FinishReason != "length" {
				t.Errorf("ignore_eos: %d tokens (%s), want %d", len(res[0].OutputIDs), res[0].FinishReason, n)
			}
		})
	}
}

// TestCountsAndTiming: token counts are exact (padding never counted), every timestamp is
// monotonic, TTFT ≤ E2E, and the batch timing agrees with the requests.
func TestCountsAndTiming(t *testing.T) {
	a := resolve(t, "synthetic:gpt2-tiny", "")
	e := load(t, a, Settings{})
	long := make([]int32, 300) // longer than gpt2-tiny's 128 positions
	for i := range long {
		long[i] = int32(100 + i)
	}
	cases := []struct {
		name       string
		prompts    []sdk.Prompt
		d          sdk.Decoding
		inputs     []int
		truncated  []bool
		outputs    int
		steps      int
		returnText bool
	}{
		{"ids of different lengths", idPrompts(prompts...), greedy(6), []int{5, 4, 1}, []bool{false, false, false}, 6, 5, false},
		{"text", []sdk.Prompt{{ID: "t", Text: "Hello, my name is"}, {ID: "u", Text: "I"}}, sdk.Decoding{MaxNewTokens: 3, Greedy: true, IgnoreEOS: true, ReturnText: true}, []int{5, 1}, []bool{false, false}, 3, 2, true},
		{"max_input_tokens truncates from the left", idPrompts(prompts[0]), sdk.Decoding{MaxNewTokens: 2, Greedy: true, MaxInputTokens: 3}, []int{3}, []bool{true}, 2, 1, false},
		{"longer than the context: context minus max_new_tokens", idPrompts(long, prompts[2]), greedy(8), []int{120, 1}, []bool{true, false}, 8, 7, false},
		{"max_input_tokens beyond the context: the context", idPrompts(long), sdk.Decoding{MaxNewTokens: 4, Greedy: true, IgnoreEOS: true, MaxInputTokens: 1000}, []int{128}, []bool{true}, 4, 3, false},
		{"max_new_tokens beyond the context: half the context, then context shifts", idPrompts(long), greedy(200), []int{64}, []bool{true}, 200, 199, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, bt, _ := collect(t, e, sdk.GenerateRequest{Prompts: c.prompts, Decoding: c.d})
			in, out := 0, 0
			for i, r := range res {
				if r.InputTokens != c.inputs[i] || r.Truncated != c.truncated[i] {
					t.Errorf("request %d: %d input tokens (truncated %v), want %d (%v)", i, r.InputTokens, r.Truncated, c.inputs[i], c.truncated[i])
				}
				if len(r.OutputIDs) != c.outputs || len(r.TokenMonoNS) != c.outputs {
					t.Errorf("request %d: %d ids, %d times, want %d", i, len(r.OutputIDs), len(r.TokenMonoNS), c.outputs)
				}
				if r.StartMonoNS != bt.StartMonoNS {
					t.Errorf("request %d starts at %d, its batch at %d", i, r.StartMonoNS, bt.StartMonoNS)
				}
				prev := r.StartMonoNS
				for j, ts := range r.TokenMonoNS {
					if ts < prev {
						t.Errorf("request %d: token %d at %d, before %d", i, j, ts, prev)
					}
					prev = ts
				}
				if ttft, e2e := r.TokenMonoNS[0]-r.StartMonoNS, prev-r.StartMonoNS; ttft <= 0 || ttft > e2e {
					t.Errorf("request %d: TTFT %d ns, E2E %d ns", i, ttft, e2e)
				}
				if c.returnText && r.Text == "" {
					t.Errorf("request %d: no text", i)
				}
				if !c.returnText && r.Text != "" {
					t.Errorf("request %d: text %q without return_text", i, r.Text)
				}
				in += r.InputTokens
				out += len(r.OutputIDs)
			}
			if bt.InputTokens != in || bt.OutputTokens != out || bt.Requests != len(res) || bt.Steps != c.steps {
				t.Errorf("batch %+v; want %d in, %d out, %d requests, %d steps", bt, in, out, len(res), c.steps)
			}
			if !(bt.StartMonoNS < bt.FirstTokenMonoNS && bt.FirstTokenMonoNS <= bt.EndMonoNS) {
				t.Errorf("batch timing out of order: %+v", bt)
			}
		})
	}
}

// TestTextMatchesIDs: a text prompt is tokenized with the model's tokenizer, and the output text
// is the detokenized output ids.
func TestTextMatchesIDs(t *testing.T) {
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), Settings{})
	d := sdk.Decoding{MaxNewTokens: 5, Greedy: true, IgnoreEOS: true, ReturnText: true}
	byText, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "x", Text: "Hello, my name is"}}, Decoding: d})
	byIDs, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[0]), Decoding: d})
	if !slices.Equal(byText[0].OutputIDs, byIDs[0].OutputIDs) || byText[0].Text != byIDs[0].Text {
		t.Errorf("text prompt gave %v %q, ids gave %v %q", byText[0].OutputIDs, byText[0].Text, byIDs[0].OutputIDs, byIDs[0].Text)
	}
	e.mu.Lock()
	tok := e.m.tok
	e.mu.Unlock()
	if want, _ := tok.Decode(byIDs[0].OutputIDs); byIDs[0].Text != want {
		t.Errorf("text %q, want %q", byIDs[0].Text, want)
	}
}

func TestWarmup(t *testing.T) {
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), Settings{})
	ts, err := e.Warmup(context.Background(), sdk.WarmupRequest{GenerateRequest: sdk.GenerateRequest{Prompts: idPrompts(prompts...), Decoding: greedy(3)}, Batches: 3})
	if err != nil || len(ts) != 3 {
		t.Fatalf("warmup: %d timings, %v", len(ts), err)
	}
	for i := 1; i < len(ts); i++ {
		if ts[i].StartMonoNS < ts[i-1].EndMonoNS || ts[i].OutputTokens != 9 {
			t.Errorf("timing %d = %+v after %+v", i, ts[i], ts[i-1])
		}
	}
}

// TestCancel: cancelling the context stops a long generation between steps.
func TestCancel(t *testing.T) {
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), Settings{})
	ctx, cancel := context.WithCancel(context.Background())
	emitted := 0
	e.onStep = func(step int, _ [][]float32) {
		if step == 20 {
			cancel()
		}
	}
	_, err := e.Generate(ctx, sdk.GenerateRequest{Prompts: idPrompts(prompts...), Decoding: greedy(1 << 20)}, func(sdk.RequestResult) error { emitted++; return nil })
	if !errors.Is(err, context.Canceled) || emitted != 0 {
		t.Fatalf("cancelled generate: %v, %d emitted", err, emitted)
	}
	e.onStep = nil
	// The engine is usable afterwards.
	if _, _, _ = collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: greedy(2)}); t.Failed() {
		t.Fatal("generate after a cancel failed")
	}
	stop := errors.New("stop")
	if _, err := e.Generate(context.Background(), sdk.GenerateRequest{Prompts: idPrompts(prompts...), Decoding: greedy(2)}, func(sdk.RequestResult) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("emit error: got %v", err)
	}
}

func TestBadInput(t *testing.T) {
	a := resolve(t, "synthetic:gpt2-tiny", "")
	capped := DefaultSettings()
	capped.MaxBatchSize = 2
	e := load(t, a, capped)
	ok := sdk.Decoding{MaxNewTokens: 2, Greedy: true}
	sampling := func(temp, topP float64, topK int) sdk.Decoding {
		return sdk.Decoding{MaxNewTokens: 2, Temperature: temp, TopP: topP, TopK: topK}
	}
	cases := []struct {
		name string
		req  sdk.GenerateRequest
	}{
		{"zero prompts", sdk.GenerateRequest{Decoding: ok}},
		{"max_new_tokens 0", sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: sdk.Decoding{Greedy: true}}},
		{"max_new_tokens negative", sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: sdk.Decoding{MaxNewTokens: -1, Greedy: true}}},
		{"max_input_tokens negative", sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: sdk.Decoding{MaxNewTokens: 1, MaxInputTokens: -1, Greedy: true}}},
		{"top_p 0", sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: sampling(1, 0, 0)}},
		{"top_p above 1", sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: sampling(1, 1.5, 0)}},
		{"temperature 0 when sampling", sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: sampling(0, 1, 0)}},
		{"top_k negative", sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: sampling(1, 1, -1)}},
		{"batch above max_batch_size", sdk.GenerateRequest{Prompts: idPrompts(prompts...), Decoding: ok}},
		{"repeated prompt id", sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "x", IDs: []int32{1}}, {ID: "x", IDs: []int32{2}}}, Decoding: ok}},
		{"empty prompt", sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "x"}}, Decoding: ok}},
		{"id outside the vocabulary", sdk.GenerateRequest{Prompts: idPrompts([]int32{50257}), Decoding: ok}},
		{"negative id", sdk.GenerateRequest{Prompts: idPrompts([]int32{-1}), Decoding: ok}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.Generate(context.Background(), c.req, func(sdk.RequestResult) error { t.Error("emitted"); return nil })
			if !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
	t.Run("still works", func(t *testing.T) {
		collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: ok})
	})
	t.Run("generate before load", func(t *testing.T) {
		_, err := New().Generate(context.Background(), sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: ok}, func(sdk.RequestResult) error { return nil })
		if !errors.Is(err, sdk.ErrFailedPrecondition) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("load twice", func(t *testing.T) {
		_, err := e.Load(context.Background(), sdk.LoadRequest{Artifact: *a})
		if !errors.Is(err, sdk.ErrFailedPrecondition) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("unknown device kind", func(t *testing.T) {
		_, err := New().Load(context.Background(), sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "tpu"}})
		if !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("got %v", err)
		}
	})
}

// TestCUDAMissing: asking for the CUDA provider where ONNX Runtime has none is a clear
// failed-precondition error, never a silent run on the CPU.
func TestCUDAMissing(t *testing.T) {
	a := resolve(t, "synthetic:gpt2-tiny", "")
	lib, _ := filepathOfORT()
	if _, err := os.Stat(filepath.Join(filepath.Dir(lib), "libonnxruntime_providers_cuda.so")); err == nil {
		t.Skip("this ONNX Runtime has the CUDA provider; the GPU script covers it")
	}
	s := DefaultSettings()
	s.Provider = ProviderCUDA
	s.LibraryPath = lib
	e := New()
	e.SetSettings(s)
	start := time.Now()
	_, err := e.Load(context.Background(), sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}})
	if !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Fatalf("load with provider cuda: %v", err)
	}
	t.Logf("%v (%s)", err, time.Since(start))
	if _, err := e.Generate(context.Background(), sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: greedy(1)}, func(sdk.RequestResult) error { return nil }); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Errorf("generate after a failed load: %v", err)
	}
}

// TestTokenIDsOnly: loaded with token_ids_only, the engine loads no tokenizer, generates from
// ids exactly as with one, and refuses a text prompt saying why.
func TestTokenIDsOnly(t *testing.T) {
	a := resolve(t, "synthetic:gpt2-tiny", "")
	full := load(t, a, Settings{})
	e := New()
	s := DefaultSettings()
	s.LibraryPath, _ = filepathOfORT()
	e.SetSettings(s)
	if _, err := e.Load(context.Background(), sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}, Threads: 1, TokenIDsOnly: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Unload(context.Background()) })
	e.mu.Lock()
	tok := e.m.tok
	e.mu.Unlock()
	if tok != nil {
		t.Error("a tokenizer was loaded for token ids only")
	}
	want, _, _ := collect(t, full, sdk.GenerateRequest{Prompts: idPrompts(prompts[0]), Decoding: greedy(5)})
	got, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[0]), Decoding: greedy(5)})
	if !slices.Equal(got[0].OutputIDs, want[0].OutputIDs) || got[0].InputTokens != 5 {
		t.Errorf("ids only gave %v (%d input tokens), with a tokenizer %v", got[0].OutputIDs, got[0].InputTokens, want[0].OutputIDs)
	}
	_, err := e.Generate(context.Background(), sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "x", Text: "Hello"}}, Decoding: greedy(1)}, func(sdk.RequestResult) error { return nil })
	if !errors.Is(err, sdk.ErrInvalidArgument) || !strings.Contains(err.Error(), "token_ids_only") {
		t.Errorf("text prompt: %v, want an invalid-argument error naming token_ids_only", err)
	}
}

// TestNvidiaDeviceChoosesCUDA: the device kind "nvidia" (the vendor the nvml meter reports, which
// lemctl passes on) selects the CUDA provider under provider auto, exactly as its older name
// "cuda" does: where ONNX Runtime has no CUDA provider, both fail to load, never running on the
// CPU instead.
func TestNvidiaDeviceChoosesCUDA(t *testing.T) {
	a := resolve(t, "synthetic:gpt2-tiny", "")
	lib, _ := filepathOfORT()
	if _, err := os.Stat(filepath.Join(filepath.Dir(lib), "libonnxruntime_providers_cuda.so")); err == nil {
		t.Skip("this ONNX Runtime has the CUDA provider; the GPU script covers it")
	}
	for _, kind := range []string{"nvidia", "cuda"} {
		s := DefaultSettings()
		s.LibraryPath = lib
		e := New()
		e.SetSettings(s)
		_, err := e.Load(context.Background(), sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: kind, Index: 0, UUID: "GPU-x"}})
		if !errors.Is(err, sdk.ErrFailedPrecondition) {
			t.Errorf("load on a %s device without the CUDA provider: %v, want a failed precondition", kind, err)
		}
	}
}

// TestQuantisedGreedyEqualsNode: the greedy ids of the int8 and int4 presets (and of fp32
// gpt2-tiny, as a control) equal those of an independent decoder, onnxruntime-node, on the
// same file, each prompt alone; and their agreement with the fp32 preset's ids is reported
// (quantisation may change them: not required equal).
func TestQuantisedGreedyEqualsNode(t *testing.T) {
	const steps = 12
	refs := []string{"gpt2-tiny", "gpt2-tiny-q8", "gpt2-tiny-q4", "llama-tiny-q8", "llama-tiny-q4", "gpt2-124m-q4"}
	if testing.Short() {
		refs = refs[:5]
	}
	// gpt2-124m-q8 takes minutes in both decoders (ONNX Runtime's 8-bit MatMulNBits CPU kernel is
	// slow at this size): only with LEM_ONNX_LONG_TESTS=1.
	if os.Getenv("LEM_ONNX_LONG_TESTS") == "1" {
		refs = append(refs, "gpt2-124m-q8")
	}
	for _, name := range refs {
		t.Run(name, func(t *testing.T) {
			a := resolve(t, "synthetic:"+name, "")
			want := testenv.NodeGreedy(t, a.Metadata["model_dir"], prompts, steps)
			e := load(t, a, Settings{})
			base, _, _ := strings.Cut(strings.TrimSuffix(strings.TrimSuffix(name, "-q8"), "-q4"), "?")
			fp := load(t, resolve(t, "synthetic:"+base, ""), Settings{})
			agree, total := 0, 0
			for i, p := range prompts {
				got, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(p), Decoding: greedy(steps)})
				if !slices.Equal(got[0].OutputIDs, want[i]) {
					t.Errorf("prompt %d: engine greedy ids %v, onnxruntime-node %v", i, got[0].OutputIDs, want[i])
				}
				ref, _, _ := collect(t, fp, sdk.GenerateRequest{Prompts: idPrompts(p), Decoding: greedy(steps)})
				for k := range ref[0].OutputIDs {
					total++
					if k < len(got[0].OutputIDs) && got[0].OutputIDs[k] == ref[0].OutputIDs[k] {
						agree++
					}
				}
			}
			t.Logf("%s: greedy ids equal onnxruntime-node's; agreement with %s (fp32) %d/%d = %.0f%% of positions", name, base, agree, total, 100*float64(agree)/float64(total))
		})
	}
}

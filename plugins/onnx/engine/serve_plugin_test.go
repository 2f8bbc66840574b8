package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// TestServeThroughPlugin drives Serve in the real plugin binary over gRPC, as lemctl does:
// requests sent at different steps (one longer than the running batch, one bad, one cancelled)
// come back with the ids Generate gives each alone through the same plugin, step events carry
// every token and the text deltas, and closing the host's side ends the stream.
func TestServeThroughPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not building the plugin binary")
	}
	cfg := pluginConfig(t, t.TempDir())
	bin := pluginBinary(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // hang guard
	defer cancel()
	c, err := hostclient.Open(ctx, bin)
	if err != nil {
		t.Fatalf("open %s: %v", bin, err)
	}
	defer c.Close()
	if errs, err := c.Configure(ctx, cfg); err != nil || len(errs) > 0 {
		t.Fatalf("configure: %v %v", errs, err)
	}
	a, err := c.Loader().Resolve(ctx, "synthetic:gpt2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	e, ok := c.Engine().(sdk.ContinuousEngine)
	if !ok {
		t.Fatal("the host's engine client does not offer Serve")
	}
	if _, err := e.Load(ctx, sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}}); err != nil {
		t.Fatal(err)
	}
	greedy := func(n int) sdk.Decoding {
		return sdk.Decoding{MaxNewTokens: n, Greedy: true, IgnoreEOS: true, ReturnText: true}
	}
	long := make([]int32, 30)
	for i := range long {
		long[i] = int32(500 + 3*i)
	}
	script := map[int][]sdk.ServeRequest{
		0: {{Prompt: sdk.Prompt{ID: "a", Text: "Hello, my name is"}, Decoding: greedy(20)}},
		2: {{Prompt: sdk.Prompt{ID: "b", IDs: long}, Decoding: greedy(8)}, {Prompt: sdk.Prompt{ID: "bad", IDs: []int32{1 << 20}}, Decoding: greedy(2)}},
		4: {{Prompt: sdk.Prompt{ID: "c", Text: "I"}, Decoding: greedy(40)}},
		9: {{Prompt: sdk.Prompt{ID: "c"}, Cancel: true}},
	}
	in := make(chan sdk.ServeRequest, 8)
	for _, r := range script[0] {
		in <- r
	}
	steps, sent := 0, 1
	done := map[string]sdk.RequestResult{}
	tokens, texts := map[string][]int32{}, map[string]string{}
	batchSum := 0
	err = e.Serve(ctx, sdk.ServeOptions{StepEvents: true}, in, func(ev sdk.ServeEvent) error {
		if ev.Done != nil {
			done[ev.Done.ID] = *ev.Done
			return nil
		}
		steps++
		batchSum += ev.Step.BatchSize
		for _, tk := range ev.Step.Tokens {
			tokens[tk.ID] = append(tokens[tk.ID], tk.TokenID)
			texts[tk.ID] += tk.Text
		}
		if rs, ok := script[steps]; ok {
			for _, r := range rs {
				in <- r
			}
			if sent++; sent == len(script) {
				close(in)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	if float64(batchSum)/float64(steps) <= 1 {
		t.Errorf("mean batch %d/%d, want > 1", batchSum, steps)
	}
	for _, id := range []string{"a", "b"} {
		r := done[id]
		var p sdk.Prompt
		var d sdk.Decoding
		for _, rs := range script {
			for _, x := range rs {
				if x.Prompt.ID == id {
					p, d = x.Prompt, x.Decoding
				}
			}
		}
		var alone sdk.RequestResult
		if _, err := e.Generate(ctx, sdk.GenerateRequest{Prompts: []sdk.Prompt{p}, Decoding: d}, func(r sdk.RequestResult) error { alone = r; return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.OutputIDs, alone.OutputIDs) || r.Text != alone.Text || r.FinishReason != "length" {
			t.Errorf("%s: serve %v %q (%s), alone %v %q", id, r.OutputIDs, r.Text, r.FinishReason, alone.OutputIDs, alone.Text)
		}
		if !slices.Equal(tokens[id], r.OutputIDs) || texts[id] != r.Text || r.MeanBatch < 1 {
			t.Errorf("%s: steps carried %v %q, Done %v %q (mean batch %g)", id, tokens[id], texts[id], r.OutputIDs, r.Text, r.MeanBatch)
		}
	}
	if r := done["bad"]; r.FinishReason != "error" || r.ErrorKind != "engine" || !strings.Contains(r.Error, "outside the vocabulary") {
		t.Errorf("bad: %+v", r)
	}
	if r := done["c"]; r.FinishReason != "cancelled" || len(r.OutputIDs) == 0 || len(r.OutputIDs) >= 40 {
		t.Errorf("c: %s with %d tokens, want cancelled part way", r.FinishReason, len(r.OutputIDs))
	}
}

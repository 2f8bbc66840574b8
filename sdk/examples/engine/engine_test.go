package main

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

// testArtifact is a byte-vocabulary model like the example loader's, with EOS 256.
var testArtifact = sdk.Artifact{Reference: "example:test", Path: "example:test", Format: "example", VocabSize: 257,
	EOSTokenIDs: []int32{256}, BOSTokenID: -1, PadTokenID: -1, ContextLength: 64}

// loadedEngine returns an engine with the given pace and artifact loaded.
func loadedEngine(t *testing.T, p pace, a sdk.Artifact) *engine {
	t.Helper()
	e := &engine{pace: p}
	if _, err := e.Load(context.Background(), sdk.LoadRequest{Artifact: a, Device: sdk.Device{Kind: "cpu", Index: -1}}); err != nil {
		t.Fatalf("load: %v", err)
	}
	return e
}

// collect runs Generate and returns the results in emit order.
func collect(t *testing.T, e *engine, req sdk.GenerateRequest) ([]sdk.RequestResult, *sdk.BatchTiming, error) {
	t.Helper()
	var out []sdk.RequestResult
	bt, err := e.Generate(context.Background(), req, func(r sdk.RequestResult) error { out = append(out, r); return nil })
	return out, bt, err
}

// expected recomputes the toy recurrence.
func expected(prev, offset, vocab int64, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		prev = (prev*31 + 7 + offset) % vocab
		out[i] = int32(prev)
	}
	return out
}

func TestGenerateTokens(t *testing.T) {
	noEOS := sdk.Artifact{Reference: "r"} // vocabulary 1000, no EOS
	eos29 := sdk.Artifact{Reference: "r", EOSTokenIDs: []int32{29}}
	tests := []struct {
		name      string
		artifact  sdk.Artifact
		prompt    sdk.Prompt
		decoding  sdk.Decoding
		wantIDs   []int32
		wantIn    int
		finish    string
		truncated bool
		text      string
	}{
		{"golden greedy ids", noEOS, sdk.Prompt{ID: "a", IDs: []int32{5}}, sdk.Decoding{MaxNewTokens: 4, Greedy: true},
			[]int32{162, 29, 906, 93}, 1, "length", false, ""},
		{"stops at EOS, counted once", eos29, sdk.Prompt{ID: "a", IDs: []int32{1, 5}}, sdk.Decoding{MaxNewTokens: 4, Greedy: true},
			[]int32{162, 29}, 2, "eos", false, ""},
		{"ignore EOS", eos29, sdk.Prompt{ID: "a", IDs: []int32{5}}, sdk.Decoding{MaxNewTokens: 4, Greedy: true, IgnoreEOS: true},
			[]int32{162, 29, 906, 93}, 1, "length", false, ""},
		{"sampling offsets by the seed", noEOS, sdk.Prompt{ID: "a", IDs: []int32{5}}, sdk.Decoding{MaxNewTokens: 3, Seed: 1003},
			expected(5, 3, 1000, 3), 1, "length", false, ""},
		{"left truncation", noEOS, sdk.Prompt{ID: "a", IDs: []int32{9, 8, 7, 6, 5}}, sdk.Decoding{MaxNewTokens: 2, Greedy: true, MaxInputTokens: 2},
			[]int32{162, 29}, 2, "length", true, ""},
		{"context length truncates to leave room for the new tokens", testArtifact, sdk.Prompt{ID: "a", Text: string(make([]byte, 100)) + "A"}, sdk.Decoding{MaxNewTokens: 4, Greedy: true},
			expected('A', 0, 257, 4), 60, "length", true, ""},
		{"text is one id per byte", testArtifact, sdk.Prompt{ID: "a", Text: "hé"}, sdk.Decoding{MaxNewTokens: 3, Greedy: true, ReturnText: true},
			expected(0xa9, 0, 257, 3), 3, "length", false, "j\uFFFD="}, // 106 'j', 209 (a lone UTF-8 lead byte), 61 '='

	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := loadedEngine(t, pace{}, tc.artifact)
			res, bt, err := collect(t, e, sdk.GenerateRequest{Prompts: []sdk.Prompt{tc.prompt}, Decoding: tc.decoding})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			r := res[0]
			if !reflect.DeepEqual(r.OutputIDs, tc.wantIDs) || r.InputTokens != tc.wantIn || r.FinishReason != tc.finish || r.Truncated != tc.truncated {
				t.Errorf("got ids %v in %d finish %q truncated %v; want %v %d %q %v", r.OutputIDs, r.InputTokens, r.FinishReason, r.Truncated,
					tc.wantIDs, tc.wantIn, tc.finish, tc.truncated)
			}
			if r.Text != tc.text {
				t.Errorf("text %q, want %q", r.Text, tc.text)
			}
			if bt.InputTokens != tc.wantIn || bt.OutputTokens != len(tc.wantIDs) || bt.Requests != 1 || bt.Steps != len(tc.wantIDs)-1 {
				t.Errorf("batch timing %+v", bt)
			}
		})
	}
}

func TestRenderText(t *testing.T) {
	eos := map[int32]bool{256: true}
	tests := []struct {
		name string
		ids  []int32
		want string
	}{
		{"ascii", []int32{'h', 'i'}, "hi"},
		{"utf-8", []int32{0xc3, 0xa9}, "é"},
		{"eos left out", []int32{'o', 'k', 256}, "ok"},
		{"ids above bytes left out", []int32{'a', 900, 'b'}, "ab"},
		{"invalid utf-8 replaced", []int32{'x', 0xff}, "x\uFFFD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(tc.ids, eos); got != tc.want {
				t.Errorf("render(%v) = %q, want %q", tc.ids, got, tc.want)
			}
		})
	}
}

func TestGenerateTimingAndOrder(t *testing.T) {
	const delay = 5 * time.Millisecond
	// "short" stops at its second token, which the artifact declares an EOS.
	short := expected(4, 0, 1000, 2)
	e := loadedEngine(t, pace{token: delay, prefill: time.Millisecond}, sdk.Artifact{Reference: "r", EOSTokenIDs: []int32{short[1]}})
	req := sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "long", IDs: []int32{1, 2, 3}}, {ID: "short", IDs: []int32{4}}},
		Decoding: sdk.Decoding{MaxNewTokens: 5, Greedy: true}}
	res, bt, err := collect(t, e, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].ID != "short" || res[1].ID != "long" || res[0].Index != 1 || res[1].Index != 0 {
		t.Fatalf("emit order %+v, want short (finished first) then long", res)
	}
	if got := time.Duration(bt.FirstTokenMonoNS - bt.StartMonoNS); got < 4*time.Millisecond {
		t.Errorf("prefill of 4 input tokens at 1 ms each took %s", got)
	}
	for _, r := range res {
		if r.StartMonoNS != bt.StartMonoNS || r.TokenMonoNS[0] != bt.FirstTokenMonoNS || len(r.TokenMonoNS) != len(r.OutputIDs) {
			t.Errorf("request %s: start %d first token %d, batch %+v", r.ID, r.StartMonoNS, r.TokenMonoNS[0], bt)
		}
		// Token i comes no earlier than i steps after the first (steps follow a fixed grid).
		for i := 1; i < len(r.TokenMonoNS); i++ {
			if since := time.Duration(r.TokenMonoNS[i] - r.TokenMonoNS[0]); since < time.Duration(i)*delay || r.TokenMonoNS[i] < r.TokenMonoNS[i-1] {
				t.Errorf("request %s: token %d comes %s after the first, want ≥ %s", r.ID, i, since, time.Duration(i)*delay)
			}
		}
	}
	if bt.EndMonoNS != res[1].TokenMonoNS[4] || bt.Steps != 4 || bt.OutputTokens != 7 || bt.InputTokens != 4 || bt.Requests != 2 {
		t.Errorf("batch timing %+v", bt)
	}
}

func TestGenerateErrors(t *testing.T) {
	ok := sdk.Decoding{MaxNewTokens: 2, Greedy: true}
	one := []sdk.Prompt{{ID: "a", IDs: []int32{1}}}
	tests := []struct {
		name     string
		artifact sdk.Artifact
		req      sdk.GenerateRequest
		want     error
	}{
		{"zero prompts", testArtifact, sdk.GenerateRequest{Decoding: ok}, sdk.ErrInvalidArgument},
		{"zero max_new_tokens", testArtifact, sdk.GenerateRequest{Prompts: one}, sdk.ErrInvalidArgument},
		{"negative max_new_tokens", testArtifact, sdk.GenerateRequest{Prompts: one, Decoding: sdk.Decoding{MaxNewTokens: -1}}, sdk.ErrInvalidArgument},
		{"max_new_tokens fills the context", testArtifact, sdk.GenerateRequest{Prompts: one, Decoding: sdk.Decoding{MaxNewTokens: 64}}, sdk.ErrInvalidArgument},
		{"negative max_input_tokens", testArtifact, sdk.GenerateRequest{Prompts: one, Decoding: sdk.Decoding{MaxNewTokens: 1, MaxInputTokens: -1}}, sdk.ErrInvalidArgument},
		{"empty prompt", testArtifact, sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "a"}}, Decoding: ok}, sdk.ErrInvalidArgument},
		{"id outside the vocabulary", testArtifact, sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "a", IDs: []int32{257}}}, Decoding: ok}, sdk.ErrInvalidArgument},
		{"repeated prompt id", testArtifact, sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "a", Text: "x"}, {ID: "a", Text: "y"}}, Decoding: ok}, sdk.ErrInvalidArgument},
		{"text with a tiny vocabulary", sdk.Artifact{VocabSize: 10}, sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "a", Text: "x"}}, Decoding: ok}, sdk.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := loadedEngine(t, pace{}, tc.artifact)
			if _, _, err := collect(t, e, tc.req); !errors.Is(err, tc.want) {
				t.Errorf("Generate: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	e := &engine{}
	req := sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "a", Text: "hi"}}, Decoding: sdk.Decoding{MaxNewTokens: 2, Greedy: true}}
	if _, _, err := collect(t, e, req); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Errorf("Generate before Load: %v", err)
	}
	for _, bad := range []sdk.LoadRequest{
		{Artifact: sdk.Artifact{VocabSize: -1}},
		{Artifact: sdk.Artifact{VocabSize: 10, EOSTokenIDs: []int32{10}}},
		{Artifact: testArtifact, Device: sdk.Device{Kind: "GPU 0"}},
	} {
		if _, err := e.Load(ctx, bad); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("Load(%+v): %v, want ErrInvalidArgument", bad, err)
		}
	}
	// Any vendor's accelerator will do for the toy engine.
	if _, err := (&engine{}).Load(ctx, sdk.LoadRequest{Artifact: testArtifact, Device: sdk.Device{Kind: "acme", UUID: "acme0"}}); err != nil {
		t.Errorf("Load on an acme device: %v", err)
	}
	lr, err := e.Load(ctx, sdk.LoadRequest{Artifact: testArtifact})
	if err != nil {
		t.Fatal(err)
	}
	if lr.ResidentBytes <= 0 || lr.ExecutionProvider != "toy" || lr.RuntimeVersions[pluginName] != pluginVersion {
		t.Errorf("load result %+v", lr)
	}
	if _, err := e.Load(ctx, sdk.LoadRequest{Artifact: testArtifact}); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Errorf("second Load: %v", err)
	}
	timings, err := e.Warmup(ctx, sdk.WarmupRequest{GenerateRequest: req, Batches: 3})
	if err != nil || len(timings) != 3 {
		t.Errorf("Warmup of 3: %d timings, %v", len(timings), err)
	}
	if _, err := e.Warmup(ctx, sdk.WarmupRequest{GenerateRequest: req, Batches: -1}); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("Warmup of -1: %v", err)
	}
	stop := errors.New("stop")
	if _, err := e.Generate(ctx, req, func(sdk.RequestResult) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("emit error: %v", err)
	}
	if err := e.Unload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Unload(ctx); err != nil {
		t.Errorf("second Unload: %v", err)
	}
	if _, _, err := collect(t, e, req); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Errorf("Generate after Unload: %v", err)
	}
}

func TestGenerateHonoursCancellation(t *testing.T) {
	unlimited := testArtifact
	unlimited.ContextLength = 0 // room for 2^20 new tokens
	e := loadedEngine(t, pace{token: time.Millisecond}, unlimited)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	req := sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "a", Text: "x"}}, Decoding: sdk.Decoding{MaxNewTokens: 1 << 20, IgnoreEOS: true, Greedy: true}}
	_, err := e.Generate(ctx, req, func(sdk.RequestResult) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Generate: %v, want the context's error", err)
	}
	// Uncancelled, 2^20 tokens at 1 ms would take 17 minutes; the bound is loose for busy machines.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Generate returned %s after a 50 ms deadline", d)
	}
}

func TestConformance(t *testing.T) {
	// plugintest cancels a generation of 2^20 tokens: a model with no context limit allows it.
	a := testArtifact
	a.ContextLength = 0
	plugintest.Run(t, newPlugin(), plugintest.Options{
		Config: map[string]any{"token_delay": "1ms"},
		Engine: plugintest.EngineOptions{Artifact: &a, Device: sdk.Device{Kind: "cpu", Index: -1}},
	})
}

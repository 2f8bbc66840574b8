package worker

import (
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// An engine that ignores sdk.Decoding's limit (the prompt cut to the context, not to the context
// less max_new_tokens) makes the model run past its context: each such prompt is counted once,
// across repeats, and becomes a context_exceeded warning with the counts and the advice.
func TestContextExceededByAnEngineThatDoesNotMakeRoom(t *testing.T) {
	const context = 16
	reqs := []results.Request{
		{ID: "fits", InputTokens: 8, OutputTokens: 8},       // 15 positions
		{ID: "edge", InputTokens: 9, OutputTokens: 8},       // 16 positions: the last fits
		{ID: "past", InputTokens: 16, OutputTokens: 8},      // 23 positions
		{ID: "past", InputTokens: 16, OutputTokens: 8},      // the same prompt in a second repeat
		{ID: "early-eos", InputTokens: 16, OutputTokens: 1}, // 16 positions
	}
	if n := exceeded(reqs, context); n != 1 {
		t.Errorf("exceeded: %d prompts, want 1", n)
	}
	if n := exceeded(reqs, 0); n != 0 {
		t.Errorf("exceeded with no known context: %d prompts, want 0", n)
	}
	spec := launch.WorkloadSpec{Decoding: sdk.Decoding{MaxNewTokens: 8}}
	fs := workloadFindings(results.Workload{ContextExceededPrompts: 1}, 4, spec, context)
	if len(fs) != 1 || fs[0].Code != results.CodeContextExceeded || fs[0].Severity != results.SeverityWarning {
		t.Fatalf("findings %+v, want one context_exceeded warning", fs)
	}
	want := "1 of 4 prompts ran past the model's context of 16 tokens (input + output tokens − 1 positions): the engine did not truncate them to fit workload.max_new_tokens = 8"
	if fs[0].Message != want || fs[0].Advice == "" {
		t.Errorf("message %q (advice %q), want %q with advice", fs[0].Message, fs[0].Advice, want)
	}
	if fs := workloadFindings(results.Workload{}, 4, spec, context); len(fs) != 0 {
		t.Errorf("findings %+v for a workload the engine kept inside the context, want none", fs)
	}
}

// TestTokenCountFindings: a request must report the loader's count of its prompt's ids, or
// fewer when truncated; anything else is one error finding with both numbers.
func TestTokenCountFindings(t *testing.T) {
	prompts := []sdk.Prompt{{ID: "a", IDs: make([]int32, 79)}, {ID: "b", IDs: make([]int32, 10)}, {ID: "c", Text: "no ids"}}
	ok := []results.Request{{ID: "a", InputTokens: 79}, {ID: "b", InputTokens: 4, Truncated: true}, {ID: "c", InputTokens: 500},
		{ID: "a", ErrorKind: "http_5xx", FinishReason: "error"}} // a failed request reports no input tokens: not a disagreement
	if fs := tokenCountFindings(ok, prompts, "eng"); len(fs) != 0 {
		t.Errorf("agreeing counts gave findings %+v", fs)
	}
	bad := []results.Request{{ID: "a", InputTokens: 120}, {ID: "a", InputTokens: 120, Repeat: 1}, {ID: "b", InputTokens: 10, Truncated: true}, {ID: "c", InputTokens: 3}}
	fs := tokenCountFindings(bad, prompts, "eng")
	if len(fs) != 1 {
		t.Fatalf("findings %+v, want one", fs)
	}
	f := fs[0]
	if f.Code != results.CodeInputTokensMismatch || f.Severity != results.SeverityError ||
		!strings.Contains(f.Message, "3 of 4 requests") || !strings.Contains(f.Message, "reported 120 input tokens, the loader's tokenizer counts 79") {
		t.Errorf("finding %+v", f)
	}
}

package worker

import (
	"context"
	"fmt"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// promptTokens counts, after the window, the tokens of the prompts the engine truncated: the ids
// of a prompt that has them, else its text tokenized by the loader. It returns nil (and a warning)
// when the loader cannot tokenize them.
func (st *state) promptTokens(ctx context.Context, reps []repeatWindow) map[string]int {
	truncated := map[string]bool{}
	for _, rw := range reps {
		for _, r := range rw.reqs {
			truncated[r.ID] = truncated[r.ID] || r.Truncated
		}
	}
	out := map[string]int{}
	var ids, texts []string
	for _, p := range st.w.Spec.Prompts {
		switch {
		case !truncated[p.ID]:
		case len(p.IDs) > 0:
			out[p.ID] = len(p.IDs)
		default:
			ids, texts = append(ids, p.ID), append(texts, p.Text)
		}
	}
	if len(texts) == 0 {
		return out
	}
	toks, err := st.loader.Tokenize(ctx, st.w.Spec.Model.Ref, texts)
	if err == nil && len(toks) != len(texts) {
		err = fmt.Errorf("the loader returned %d token lists for %d texts", len(toks), len(texts))
	}
	if err != nil {
		st.warn("count the tokens of the %d truncated prompts: %v", len(texts), err)
		return nil
	}
	for i, id := range ids {
		out[id] = len(toks[i])
	}
	return out
}

// tokenCountFindings cross-checks the engine's input token counts against the loader's: each
// prompt the parent tokenized has len(IDs) tokens, so a request not truncated must report
// exactly that many and a truncated one fewer (a failed request reports what it can and is not
// checked). A disagreement is an error finding that gives
// both numbers of the first request and how many disagree.
func tokenCountFindings(reqs []results.Request, prompts []sdk.Prompt, engine string) []results.Finding {
	loader := map[string]int{}
	for _, p := range prompts {
		if len(p.IDs) > 0 {
			loader[p.ID] = len(p.IDs)
		}
	}
	var bad int
	var first string
	for _, r := range reqs {
		want, ok := loader[r.ID]
		if !ok || r.Failed() || (!r.Truncated && r.InputTokens == want) || (r.Truncated && r.InputTokens < want) {
			continue
		}
		if bad == 0 {
			how := "reported"
			if r.Truncated {
				how = "reported, after truncation,"
			}
			first = fmt.Sprintf("prompt %s: the engine %s %d input tokens, the loader's tokenizer counts %d", r.ID, how, r.InputTokens, want)
		}
		bad++
	}
	if bad == 0 {
		return nil
	}
	return []results.Finding{{Code: results.CodeInputTokensMismatch, Severity: results.SeverityError,
		Message: fmt.Sprintf("%d of %d requests disagree with the loader on their input tokens (%s); input token rates and FLOPs use the engine's counts",
			bad, len(reqs), first),
		Advice: fmt.Sprintf("the engine plugin %s must count the token ids it is given; `lemctl plugins check` compares the two", engine)}}
}

// truncation counts the distinct prompts the engine truncated and the tokens cut from them (nil
// when lengths is nil and something was truncated).
func truncation(reqs []results.Request, lengths map[string]int) (prompts int64, cut *int64) {
	seen := map[string]bool{}
	var total int64
	for _, r := range reqs {
		if !r.Truncated || seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		prompts++
		total += int64(max(0, lengths[r.ID]-r.InputTokens))
	}
	if prompts > 0 && lengths == nil {
		return prompts, nil
	}
	return prompts, results.Int64(total)
}

// exceeded counts the distinct prompts that made the model process positions past its context:
// every input token and every output token but the last passes through it (0 when the context is
// unknown).
func exceeded(reqs []results.Request, context int) int64 {
	seen := map[string]bool{}
	for _, r := range reqs {
		if context > 0 && r.InputTokens+r.OutputTokens-1 > context {
			seen[r.ID] = true
		}
	}
	return int64(len(seen))
}

// workloadFindings say how many of the shard's prompts the engine truncated, to what limit, and
// how many ran past the model's context.
func workloadFindings(wl results.Workload, shard int, d launch.WorkloadSpec, context int) []results.Finding {
	var out []results.Finding
	if wl.ContextExceededPrompts > 0 {
		out = append(out, results.Finding{Code: results.CodeContextExceeded, Severity: results.SeverityWarning,
			Message: fmt.Sprintf("%d of %d prompts ran past the model's context of %d tokens (input + output tokens − 1 positions): the engine did not truncate them to fit workload.max_new_tokens = %d",
				wl.ContextExceededPrompts, shard, context, d.Decoding.MaxNewTokens),
			Advice: "set workload.max_input_tokens so that it plus workload.max_new_tokens fits the context"})
	}
	if wl.TruncatedPrompts == 0 {
		return out
	}
	limit := fmt.Sprintf("the model's context of %d tokens with workload.max_new_tokens = %d", context, d.Decoding.MaxNewTokens)
	if d.Decoding.MaxInputTokens > 0 {
		limit = fmt.Sprintf("workload.max_input_tokens = %d", d.Decoding.MaxInputTokens)
	}
	cut := "tokens cut unknown"
	if wl.TruncatedTokens != nil {
		cut = fmt.Sprintf("mean %.1f tokens cut, %d in all", float64(*wl.TruncatedTokens)/float64(wl.TruncatedPrompts), *wl.TruncatedTokens)
	}
	return append(out, results.Finding{Code: results.CodePromptsTruncated, Severity: results.SeverityWarning,
		Message: fmt.Sprintf("%d of %d prompts were truncated by the engine to fit %s (%s); input tokens count what was kept",
			wl.TruncatedPrompts, shard, limit, cut),
		Advice: "use shorter prompts, a smaller workload.max_new_tokens, or a model with a longer context"})
}

// datasetFindings are about the whole sample, not one rank (results.ExperimentWide): every rank
// reports them with a null rank, and the aggregate keeps one copy.
func datasetFindings(d launch.DatasetRef) []results.Finding {
	var out []results.Finding
	if d.SkippedRecords > 0 {
		out = append(out, results.Finding{Code: results.CodeRecordsSkipped, Severity: results.SeverityWarning,
			Message: fmt.Sprintf("%d of %d records of dataset %s had no prompt and were skipped", d.SkippedRecords, d.Records, d.Name),
			Advice:  "check workload.column and workload.format; `lemctl datasets " + d.Name + "` shows what was read"})
	}
	if d.NonUTF8Prompts > 0 {
		out = append(out, results.Finding{Code: results.CodeNonUTF8Replaced, Severity: results.SeverityWarning,
			Message: fmt.Sprintf("%d of %d prompts had bytes that are not valid UTF-8; each invalid sequence was replaced by U+FFFD before tokenizing",
				d.NonUTF8Prompts, d.Prompts),
			Advice: "re-encode the dataset as UTF-8"})
	}
	return out
}

// contextLength is the model's context in tokens, 0 when unknown.
func (st *state) contextLength() int {
	if st.artifact == nil {
		return 0
	}
	return st.artifact.ContextLength
}

package aggregate

import (
	"context"
	"testing"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
)

// Rule: the workload's truncation counts are summed over the ranks; a finding about the whole
// sample (the dataset) that every rank carries is kept once, with a null rank.
func TestWorkloadChangesSummedAndDatasetFindingsKeptOnce(t *testing.T) {
	repo := resultstest.NewMemory()
	ctx := context.Background()
	ds := results.Dataset{Name: "p.jsonl", Prompts: 8, Records: 10, SkippedRecords: 2, NonUTF8Prompts: 1}
	skipped := results.Finding{Code: results.CodeRecordsSkipped, Severity: results.SeverityWarning, Message: "2 of 10 records of dataset p.jsonl had no prompt and were skipped"}
	for rank, tr := range []struct{ prompts, tokens int64 }{{1, 7}, {2, 5}} {
		w := resultstest.Worker{Exp: "wl", Rank: rank, WorldSize: 2, Host: hostA, Device: cpuDev(rank), StartMonoNS: sec, EndMonoNS: 11 * sec,
			RequestsPerRepeat: 4, InputTokens: 3, OutputTokens: 2, TTFTNS: 1e6, ITLNS: 1e6}
		raw := w.Raw()
		raw.Dataset = ds
		raw.Workload.TruncatedPrompts, raw.Workload.TruncatedTokens = tr.prompts, results.Int64(tr.tokens)
		raw.Workload.ContextExceededPrompts = tr.prompts
		raw.Validity = results.ValidityOf([]results.Finding{skipped,
			{Code: results.CodePromptsTruncated, Severity: results.SeverityWarning, Message: "truncated", Rank: results.IntPtr(rank)}}, nil)
		data, err := results.EncodeRaw(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := repo.SaveRaw(ctx, "wl", rank, data); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.MarkComplete(ctx, "wl", rank, sha(data)); err != nil {
			t.Fatal(err)
		}
	}
	a := run(t, repo, "wl", Options{})
	if a.Workload.TruncatedPrompts != 3 || a.Workload.TruncatedTokens == nil || *a.Workload.TruncatedTokens != 12 {
		t.Errorf("workload truncated %d prompts, %v tokens; want 3 and 12", a.Workload.TruncatedPrompts, a.Workload.TruncatedTokens)
	}
	if a.Workload.ContextExceededPrompts != 3 {
		t.Errorf("workload: %d prompts past the context, want 3", a.Workload.ContextExceededPrompts)
	}
	if a.Dataset != ds {
		t.Errorf("dataset %+v, want %+v (the same in every rank, not summed)", a.Dataset, ds)
	}
	var skips, truncs []*int
	for _, f := range a.Validity.Findings {
		switch f.Code {
		case results.CodeRecordsSkipped:
			skips = append(skips, f.Rank)
		case results.CodePromptsTruncated:
			truncs = append(truncs, f.Rank)
		}
	}
	if len(skips) != 1 || skips[0] != nil {
		t.Errorf("dataset_records_skipped ranks %v: want it once, with a null rank", skips)
	}
	if len(truncs) != 2 || truncs[0] == nil || *truncs[0] != 0 || truncs[1] == nil || *truncs[1] != 1 {
		t.Errorf("prompts_truncated ranks %v: want one per rank (0, 1)", truncs)
	}
}

// Rule: a sum of tokens cut is null when any rank could not count them.
func TestTruncatedTokensUnknownOnOneRankIsUnknown(t *testing.T) {
	if got := sumKnown(sumKnown(nil, results.Int64(3), true), nil, false); got != nil {
		t.Errorf("3 + unknown = %d, want null", *got)
	}
	if got := sumKnown(sumKnown(nil, nil, true), results.Int64(3), false); got != nil {
		t.Errorf("unknown + 3 = %d, want null", *got)
	}
	if got := sumKnown(sumKnown(nil, results.Int64(3), true), results.Int64(4), false); got == nil || *got != 7 {
		t.Errorf("3 + 4 = %v, want 7", got)
	}
}

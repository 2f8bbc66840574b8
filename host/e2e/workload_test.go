package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/results"
)

// workloadDataset has 7 records: 2 without a prompt (skipped), one with a byte that is not UTF-8,
// and two longer than the 8 tokens that the 16-token context the config gives the example model
// leaves for a prompt beside max_new_tokens = 8 (one token per byte): record 2 (20 bytes, 12 cut)
// and record 4 (30 bytes, 22 cut).
const workloadDataset = `{"meta": "no prompt here"}
{"prompt": "short"}
{"prompt": "abcdefghijklmnopqrst"}
{"prompt": "caf` + "\xe9" + `"}
{"prompt": "012345678901234567890123456789"}
{"prompt": ""}
{"prompt": "tiny"}
`

// workloadConfig runs the dataset file on two workers of the example model with a 16-token
// context.
func workloadConfig(file string, maxNew int) string {
	cfg := experiment("workload", 2, noMeters)
	cfg = strings.Replace(cfg, `ref = "example:tiny"`, "ref = \"example:tiny\"\ncontext_length = 16", 1)
	cfg = strings.Replace(cfg, `dataset = "builtin"`, fmt.Sprintf("dataset = %q", file), 1)
	cfg = strings.Replace(cfg, "prompts = 16", "prompts = 5", 1)
	return strings.Replace(cfg, "max_new_tokens = 8", fmt.Sprintf("max_new_tokens = %d", maxNew), 1)
}

func TestRunReportsEveryChangeToTheWorkload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prompts.jsonl")
	if err := os.WriteFile(file, []byte(workloadDataset), 0o644); err != nil {
		t.Fatal(err)
	}
	r, res := runExperiment(t, workloadConfig(file, 8), nil)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	cut := map[string]int64{"2": 12, "4": 22}
	skipped := fmt.Sprintf("2 of 7 records of dataset %s had no prompt and were skipped", file)
	nonUTF8 := "1 of 5 prompts had bytes that are not valid UTF-8; each invalid sequence was replaced by U+FFFD before tokenizing"
	wantDataset := results.Dataset{Name: file, Prompts: 5, Records: 7, SkippedRecords: 2, NonUTF8Prompts: 1}
	var sumPrompts, sumTokens int64
	for rank := 0; rank < 2; rank++ {
		raw := readRaw(t, res, exp, rank)
		d := raw.Dataset
		d.SHA256 = ""
		if d != wantDataset {
			t.Errorf("rank %d dataset %+v, want %+v", rank, d, wantDataset)
		}
		// What this rank's shard truncated, from its own requests.
		shard := map[string]bool{}
		var n, tokens int64
		for _, q := range raw.Requests {
			if shard[q.ID] {
				continue
			}
			shard[q.ID] = true
			if c, long := cut[q.ID]; long {
				n, tokens = n+1, tokens+c
				if !q.Truncated || q.InputTokens != 8 {
					t.Errorf("rank %d request %s: truncated %v, %d input tokens; want true, 8", rank, q.ID, q.Truncated, q.InputTokens)
				}
			} else if q.Truncated {
				t.Errorf("rank %d request %s marked truncated", rank, q.ID)
			}
		}
		// The example engine truncates to the context minus max_new_tokens, as sdk.Decoding asks:
		// no prompt runs past the context (host/worker's unit tests cover an engine that does).
		if raw.Workload.ContextExceededPrompts != 0 {
			t.Errorf("rank %d: %d prompts past the context, want 0", rank, raw.Workload.ContextExceededPrompts)
		}
		if raw.Workload.TruncatedPrompts != n || raw.Workload.TruncatedTokens == nil || *raw.Workload.TruncatedTokens != tokens {
			t.Errorf("rank %d workload: %d truncated prompts, %v tokens cut; want %d, %d", rank, raw.Workload.TruncatedPrompts, raw.Workload.TruncatedTokens, n, tokens)
		}
		want := map[string]string{results.SeverityWarning + " dataset_records_skipped": skipped, results.SeverityWarning + " non_utf8_replaced": nonUTF8}
		if n > 0 {
			want[results.SeverityWarning+" prompts_truncated"] = fmt.Sprintf("%d of %d prompts were truncated by the engine to fit the model's context of 16 tokens with workload.max_new_tokens = 8 (mean %.1f tokens cut, %d in all); input tokens count what was kept",
				n, len(shard), float64(tokens)/float64(n), tokens)
		}
		got := map[string]string{}
		for _, f := range raw.Validity.Findings {
			got[f.Severity+" "+f.Code] = f.Message
			if f.Code == "prompts_truncated" && (f.Rank == nil || *f.Rank != rank) {
				t.Errorf("rank %d: prompts_truncated has rank %v", rank, f.Rank)
			}
		}
		for k, msg := range want {
			if got[k] != msg {
				t.Errorf("rank %d finding %s: %q\nwant %q", rank, k, got[k], msg)
			}
		}
		sumPrompts, sumTokens = sumPrompts+n, sumTokens+tokens
	}
	if sumPrompts != 2 || sumTokens != 34 {
		t.Fatalf("raws truncated %d prompts, %d tokens; want 2 and 34", sumPrompts, sumTokens)
	}

	agg := readAggregated(t, res, exp)
	if agg.Workload.ContextExceededPrompts != 0 {
		t.Errorf("aggregate: %d prompts past the context, want 0", agg.Workload.ContextExceededPrompts)
	}
	if agg.Workload.TruncatedPrompts != 2 || agg.Workload.TruncatedTokens == nil || *agg.Workload.TruncatedTokens != 34 {
		t.Errorf("aggregate: %d truncated prompts, %v tokens cut; want 2 and 34", agg.Workload.TruncatedPrompts, agg.Workload.TruncatedTokens)
	}
	d := agg.Dataset
	d.SHA256 = ""
	if d != wantDataset {
		t.Errorf("aggregate dataset %+v, want %+v", d, wantDataset)
	}
	codes := map[string]int{}
	for _, f := range agg.Validity.Findings {
		codes[f.Code]++
		if (f.Code == "dataset_records_skipped" || f.Code == "non_utf8_replaced") && f.Rank != nil {
			t.Errorf("aggregate %s has rank %d, want null (the whole experiment)", f.Code, *f.Rank)
		}
	}
	if codes["dataset_records_skipped"] != 1 || codes["non_utf8_replaced"] != 1 || codes["prompts_truncated"] < 1 {
		t.Errorf("aggregate findings by code %v: want the dataset's once each and prompts_truncated per rank", codes)
	}
	if !agg.Validity.Valid {
		t.Errorf("aggregate invalid: warnings only were expected: %+v", agg.Validity.Findings)
	}
	out := r.stdout.String()
	for _, s := range []string{skipped, nonUTF8, "prompts_truncated"} {
		if !strings.Contains(out, s) {
			t.Errorf("the summary does not show %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "context_exceeded") {
		t.Errorf("the summary shows context_exceeded, but the engine kept every prompt inside the context:\n%s", out)
	}
}

func TestRunRefusesMaxNewTokensThatFillTheContext(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prompts.jsonl")
	if err := os.WriteFile(file, []byte(workloadDataset), 0o644); err != nil {
		t.Fatal(err)
	}
	r, res := runExperiment(t, workloadConfig(file, 16), nil)
	if r.code != 2 {
		t.Fatalf("run exited %d, want 2\nstderr:\n%s", r.code, r.stderr.String())
	}
	want := `workload.max_new_tokens = 16: the model "example:tiny" has a context of 16 tokens, which must hold the prompt and the new tokens (valid: 1..15)`
	if !strings.Contains(r.stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, r.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(res, "runs")); err == nil {
		t.Errorf("a run directory exists under %s: a worker was started", res)
	}
}

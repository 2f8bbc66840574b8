package results

// Finding codes about changes to the workload: what ran is not exactly what the dataset and the
// configuration asked for (docs/datasets.md).
const (
	CodeRecordsSkipped   = "dataset_records_skipped"
	CodeNonUTF8Replaced  = "non_utf8_replaced"
	CodePromptsTruncated = "prompts_truncated"
	CodeContextExceeded  = "context_exceeded"
	// CodeInputTokensMismatch: the engine reported input token counts that disagree with the
	// loader's tokenization of the same prompts, so input token rates and FLOPs are not
	// trustworthy (an error: the result is invalid).
	CodeInputTokensMismatch = "input_tokens_mismatch"
)

// ExperimentWide reports whether findings with this code are about the whole sample rather than
// one rank: every raw result carries them with a null rank, and an aggregate keeps one copy.
func ExperimentWide(code string) bool {
	return code == CodeRecordsSkipped || code == CodeNonUTF8Replaced
}

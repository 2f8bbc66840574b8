package results

// Finding codes about changes to the workload: what ran is not exactly what the dataset and the
// configuration asked for (docs/datasets.md).
const (
	CodeRecordsSkipped   = "dataset_records_skipped"
	CodeNonUTF8Replaced  = "non_utf8_replaced"
	CodePromptsTruncated = "prompts_truncated"
	CodeContextExceeded  = "context_exceeded"
)

// ExperimentWide reports whether findings with this code are about the whole sample rather than
// one rank: every raw result carries them with a null rank, and an aggregate keeps one copy.
func ExperimentWide(code string) bool {
	return code == CodeRecordsSkipped || code == CodeNonUTF8Replaced
}

package dataset

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/host/echo"
)

// SourceKind says where a dataset comes from.
type SourceKind int

// Dataset source kinds.
const (
	SourceBuiltin   SourceKind = iota // a prompt set embedded in lemctl
	SourceSynthetic                   // synthetic:<input_tokens>
	SourceFile                        // a file on disk
)

// Formats of dataset files.
const (
	FormatAuto     = "auto"
	FormatJSONL    = "jsonl"
	FormatAlpaca   = "alpaca"
	FormatShareGPT = "sharegpt"
	FormatText     = "text"
)

// Formats lists the file formats with what each reads.
var Formats = []struct{ Name, Extensions, Reads string }{
	{FormatJSONL, ".jsonl, .ndjson", "one JSON object per line; the prompt is workload.column, else `prompt`, else `text`, else `instruction` + `input`"},
	{FormatAlpaca, ".json", "a JSON array of {instruction, input, output}; the prompt is instruction, a blank line and input (or workload.column)"},
	{FormatShareGPT, ".json", "a JSON array of {conversations: [{from, value}]}; the prompt is the first human (or user) turn"},
	{FormatText, ".txt", "one prompt per line; blank lines are ignored"},
}

// SyntheticPrefix starts a synthetic dataset name: synthetic:<input_tokens>.
const SyntheticPrefix = "synthetic:"

// MaxSyntheticTokens bounds the input length of a synthetic prompt.
const MaxSyntheticTokens = 1 << 20

// Source is a parsed workload.dataset value.
type Source struct {
	Kind        SourceKind
	Name        string // the value as written
	InputTokens int    // SourceSynthetic
	Path        string // SourceFile
}

// ParseSource parses a workload.dataset value: a built-in name, synthetic:<input_tokens>, or
// a file path.
func ParseSource(s string) (Source, error) {
	switch {
	case s == "":
		return Source{}, fmt.Errorf("empty dataset name")
	case Builtin(s) != nil:
		return Source{Kind: SourceBuiltin, Name: s}, nil
	case strings.HasPrefix(s, SyntheticPrefix):
		n, err := strconv.Atoi(strings.TrimPrefix(s, SyntheticPrefix))
		if err != nil || n < 1 || n > MaxSyntheticTokens {
			return Source{}, fmt.Errorf("%s: want synthetic:<input_tokens> with input_tokens in [1, %d]", echo.Quote(s), MaxSyntheticTokens)
		}
		return Source{Kind: SourceSynthetic, Name: s, InputTokens: n}, nil
	}
	return Source{Kind: SourceFile, Name: s, Path: s}, nil
}

// FormatOf returns the format of a dataset file: format itself unless it is "auto", else what
// the extension says. For .json it returns FormatAuto: the records decide (DetectJSON).
func FormatOf(name, format string) (string, error) {
	switch format {
	case FormatJSONL, FormatAlpaca, FormatShareGPT, FormatText:
		return format, nil
	case FormatAuto, "":
	default:
		return "", fmt.Errorf("unknown format %s (valid: auto, jsonl, alpaca, sharegpt, text)", echo.Quote(format))
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".jsonl", ".ndjson":
		return FormatJSONL, nil
	case ".txt", ".text":
		return FormatText, nil
	case ".json":
		return FormatAuto, nil
	}
	return "", fmt.Errorf("cannot tell the format of %s from its extension (.jsonl, .ndjson, .json, .txt); set workload.format", echo.Quote(name))
}

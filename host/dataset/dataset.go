package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lemctl/lemctl/host/echo"
)

// Prompt is one request's input.
type Prompt struct {
	// ID identifies the prompt in its dataset: the record's "id" field when it has one, else
	// its 0-based record number in the source (skipped records included), so it points back
	// into the file.
	ID   string
	Text string
	// IDs are token ids; set for synthetic prompts, which have exactly the asked length.
	IDs []int32
	// NonUTF8 is true when the record's bytes were not valid UTF-8 and Text holds U+FFFD in
	// place of the invalid sequences.
	NonUTF8 bool
}

// Dataset is a loaded prompt set.
type Dataset struct {
	// Name is "builtin", "synthetic:<n>" or the file path as given.
	Name string
	// Version of a built-in set ("" otherwise).
	Version string
	// Format is the format read: jsonl, alpaca, sharegpt, text, or "builtin" / "synthetic".
	Format string
	// SHA256 is the hex sha256 of the source bytes (for a synthetic dataset: of its token ids,
	// little-endian int32, prompt after prompt).
	SHA256  string
	Prompts []Prompt
	// Skipped counts records that had no prompt (a metadata line, an empty field…).
	Skipped int
}

// Len is the number of usable prompts.
func (d *Dataset) Len() int { return len(d.Prompts) }

// NonUTF8 counts the prompts whose text had bytes that are not valid UTF-8 replaced by U+FFFD.
func NonUTF8(prompts []Prompt) int {
	n := 0
	for _, p := range prompts {
		if p.NonUTF8 {
			n++
		}
	}
	return n
}

// Tokenizer turns text into token ids and back; the host implements it with the loader
// plugin's Tokenize and Detokenize for the model under test.
type Tokenizer interface {
	Tokenize(ctx context.Context, texts []string) ([][]int32, error)
	Detokenize(ctx context.Context, ids [][]int32) ([]string, error)
}

// Options control Open.
type Options struct {
	// FS reads dataset files; nil reads the operating system's files (paths as given).
	FS fs.FS
	// Format of a file: auto (default), jsonl, alpaca, sharegpt or text.
	Format string
	// Column names the prompt field of JSONL and Alpaca records ("": prompt, text, instruction).
	Column string
	// Tokenizer builds synthetic prompts; required for synthetic:<n>.
	Tokenizer Tokenizer
	// Count is the number of synthetic prompts to build; required for synthetic:<n>.
	Count int
}

type osFS struct{}

func (osFS) Open(name string) (fs.File, error) { return os.Open(name) }

// Open loads the dataset named by a workload.dataset value.
func Open(ctx context.Context, name string, opts Options) (*Dataset, error) {
	src, err := ParseSource(name)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	switch src.Kind {
	case SourceBuiltin:
		b := Builtin(name)
		d, err := Parse(b.Name, b.data, FormatJSONL, "")
		if err != nil {
			return nil, fmt.Errorf("built-in dataset %s: %w", b.Name, err)
		}
		d.Version, d.Format = b.Version, "builtin"
		return d, nil
	case SourceSynthetic:
		return Synthetic(ctx, src.InputTokens, opts.Count, opts.Tokenizer)
	}
	format, err := FormatOf(src.Path, opts.Format)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", src.Path, err)
	}
	fsys := opts.FS
	if fsys == nil {
		fsys = osFS{}
	}
	data, err := fs.ReadFile(fsys, src.Path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("dataset %s: no such file: %w", src.Path, err)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("dataset %s: permission denied: %w", src.Path, err)
		}
		return nil, fmt.Errorf("dataset %s: read: %w", src.Path, err)
	}
	return Parse(src.Path, data, format, opts.Column)
}

// Parse reads a dataset file's bytes in the given format (auto is allowed for JSON: the records
// decide between alpaca and sharegpt). Records without a prompt are skipped and counted; a
// malformed file is an error naming the line. Bytes that are not valid UTF-8 become U+FFFD (as
// the JSON decoder does; a text line the same way) and the prompt is marked NonUTF8.
func Parse(name string, data []byte, format, column string) (*Dataset, error) {
	sum := sha256.Sum256(data)
	d := &Dataset{Name: name, SHA256: hex.EncodeToString(sum[:])}
	var err error
	switch format {
	case FormatJSONL:
		err = d.parseJSONL(data, column)
	case FormatText:
		d.parseText(data)
	case FormatAlpaca, FormatShareGPT, FormatAuto:
		err = d.parseJSON(data, format, column)
	default:
		err = fmt.Errorf("unknown format %s (valid: auto, jsonl, alpaca, sharegpt, text)", echo.Quote(format))
	}
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	return d, nil
}

func (d *Dataset) parseJSONL(data []byte, column string) error {
	d.Format = FormatJSONL
	record := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			return fmt.Errorf("line %d: invalid JSON: %v", i+1, err)
		}
		d.add(record, v, FormatJSONL, column, !utf8.Valid(line))
		record++
	}
	return nil
}

func (d *Dataset) parseText(data []byte) {
	d.Format = FormatText
	record := 0
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		bad := !utf8.ValidString(line)
		if bad {
			line = strings.ToValidUTF8(line, "\uFFFD")
		}
		d.Prompts = append(d.Prompts, Prompt{ID: strconv.Itoa(record), Text: line, NonUTF8: bad})
		record++
	}
}

func (d *Dataset) parseJSON(data []byte, format, column string) error {
	// Raw records first, so each one's bytes can be checked for UTF-8 before decoding.
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
			return fmt.Errorf("line %d: invalid JSON: %v", line, err)
		}
		return fmt.Errorf("want a JSON array of records: %v", err)
	}
	records := make([]any, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &records[i]); err != nil {
			return fmt.Errorf("record %d: invalid JSON: %v", i, err)
		}
	}
	if format == FormatAuto {
		format = FormatAlpaca
		for _, r := range records {
			if m, ok := r.(map[string]any); ok {
				if _, ok := m["conversations"]; ok {
					format = FormatShareGPT
				}
				break
			}
		}
	}
	d.Format = format
	for i, r := range records {
		d.add(i, r, format, column, !utf8.Valid(raws[i]))
	}
	return nil
}

// add appends record number i, or counts it as skipped when it has no prompt. nonUTF8 says the
// record's bytes were not valid UTF-8: the prompt is marked when the decoder's U+FFFD is in it.
func (d *Dataset) add(i int, v any, format, column string, nonUTF8 bool) {
	rec, ok := v.(map[string]any)
	var text string
	if ok {
		if format == FormatShareGPT {
			text = firstHumanTurn(rec)
		} else {
			text = promptOf(rec, column)
		}
	}
	if strings.TrimSpace(text) == "" {
		d.Skipped++
		return
	}
	id := strconv.Itoa(i)
	switch v := rec["id"].(type) {
	case string:
		if v != "" {
			id = v
		}
	case float64:
		id = strconv.FormatFloat(v, 'f', -1, 64)
	}
	d.Prompts = append(d.Prompts, Prompt{ID: id, Text: text, NonUTF8: nonUTF8 && strings.ContainsRune(text, utf8.RuneError)})
}

func promptOf(rec map[string]any, column string) string {
	if column != "" {
		s, _ := rec[column].(string)
		return s
	}
	for _, k := range []string{"prompt", "text"} {
		if s, ok := rec[k].(string); ok && strings.TrimSpace(s) != "" {
			return s
		}
	}
	instr, _ := rec["instruction"].(string)
	if strings.TrimSpace(instr) == "" {
		return ""
	}
	if in, _ := rec["input"].(string); strings.TrimSpace(in) != "" {
		return instr + "\n\n" + in
	}
	return instr
}

func firstHumanTurn(rec map[string]any) string {
	turns, _ := rec["conversations"].([]any)
	for _, t := range turns {
		m, ok := t.(map[string]any)
		if !ok {
			continue
		}
		from, _ := m["from"].(string)
		if from == "" {
			from, _ = m["role"].(string)
		}
		if from != "human" && from != "user" {
			continue
		}
		if s, ok := m["value"].(string); ok {
			return s
		}
		s, _ := m["content"].(string)
		return s
	}
	return ""
}

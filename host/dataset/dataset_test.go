package dataset_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lemctl/lemctl/host/dataset"
)

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		name, file, format, column string
		wantFormat                 string
		wantIDs                    []string
		wantTexts                  []string
		wantSkipped                int
	}{
		{
			name: "jsonl with metadata first line", file: "testdata/prompts.jsonl", format: "auto", wantFormat: "jsonl",
			wantIDs:     []string{"p1", "2", "3", "4", "7"},
			wantTexts:   []string{"What is a joule?", "Summarise the water cycle.", "Translate into French.\n\nGood morning.", "Name three prime numbers.", "Explain recursion."},
			wantSkipped: 4,
		},
		{
			name: "jsonl named column", file: "testdata/column.jsonl", format: "jsonl", column: "question", wantFormat: "jsonl",
			wantIDs: []string{"0", "1"}, wantTexts: []string{"Why is the sky blue?", "How do tides work?"}, wantSkipped: 1,
		},
		{
			name: "alpaca detected", file: "testdata/alpaca.json", format: "auto", wantFormat: "alpaca",
			wantIDs:     []string{"0", "1", "3"},
			wantTexts:   []string{"Give three tips for staying healthy.", "Classify the sentiment.\n\nI love this phone.", "Write a haiku about rain."},
			wantSkipped: 1,
		},
		{
			name: "alpaca named column", file: "testdata/alpaca.json", format: "alpaca", column: "output", wantFormat: "alpaca",
			wantIDs: []string{"0", "1", "2", "3"}, wantTexts: []string{"Eat well, sleep, move.", "positive", "skipped", "..."},
		},
		{
			name: "sharegpt detected", file: "testdata/sharegpt.json", format: "auto", wantFormat: "sharegpt",
			wantIDs: []string{"conv-a", "conv-c"}, wantTexts: []string{"Plan a picnic for six.", "What is a GPU?"}, wantSkipped: 2,
		},
		{
			name: "text", file: "testdata/prompts.txt", format: "auto", wantFormat: "text",
			wantIDs: []string{"0", "1", "2"}, wantTexts: []string{"First prompt on one line.", "Second prompt, indented.", "Third prompt."},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := dataset.Open(context.Background(), tc.file, dataset.Options{Format: tc.format, Column: tc.column})
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(tc.file)
			sum := sha256.Sum256(raw)
			if d.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("sha256 %s is not that of the source bytes", d.SHA256)
			}
			if d.Name != tc.file || d.Format != tc.wantFormat || d.Skipped != tc.wantSkipped {
				t.Errorf("name %q format %q skipped %d; want %q %q %d", d.Name, d.Format, d.Skipped, tc.file, tc.wantFormat, tc.wantSkipped)
			}
			if d.Len() != len(tc.wantIDs) {
				t.Fatalf("got %d prompts %+v, want %d", d.Len(), d.Prompts, len(tc.wantIDs))
			}
			for i, p := range d.Prompts {
				if p.ID != tc.wantIDs[i] || p.Text != tc.wantTexts[i] {
					t.Errorf("prompt %d = {%q %q}, want {%q %q}", i, p.ID, p.Text, tc.wantIDs[i], tc.wantTexts[i])
				}
			}
		})
	}
}

func TestFormatErrors(t *testing.T) {
	for _, tc := range []struct{ file, format, want string }{
		{"testdata/malformed.jsonl", "auto", "dataset testdata/malformed.jsonl: line 3: invalid JSON"},
		{"testdata/malformed.json", "auto", "dataset testdata/malformed.json: line 2: invalid JSON"},
		{"testdata/object.json", "auto", "want a JSON array of records"},
		{"testdata/missing.jsonl", "auto", "dataset testdata/missing.jsonl: no such file"},
		{"testdata/prompts.jsonl", "csv", `unknown format "csv"`},
		{"testdata/data.csv", "auto", "cannot tell the format"},
		{"synthetic:0", "auto", "want synthetic:<input_tokens>"},
	} {
		_, err := dataset.Open(context.Background(), tc.file, dataset.Options{Format: tc.format})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.file, err, tc.want)
		}
	}
}

// lockedFS refuses every file with a permission error (CI runs as root, so chmod proves nothing).
type lockedFS struct{}

func (lockedFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
}

func TestOpenThroughFS(t *testing.T) {
	_, err := dataset.Open(context.Background(), "secret.jsonl", dataset.Options{FS: lockedFS{}})
	if err == nil || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "dataset secret.jsonl: permission denied") {
		t.Errorf("err = %v", err)
	}
	d, err := dataset.Open(context.Background(), "in/memory.txt", dataset.Options{FS: fstest.MapFS{"in/memory.txt": {Data: []byte("a\nb\n")}}})
	if err != nil || d.Len() != 2 {
		t.Errorf("map fs: %v %+v", err, d)
	}
}

func TestBuiltin(t *testing.T) {
	b := dataset.Builtin("builtin")
	if b == nil {
		t.Fatal("no built-in set named builtin")
	}
	sum := sha256.Sum256(b.Data())
	if got := hex.EncodeToString(sum[:]); got != b.SHA256 {
		t.Fatalf("embedded bytes hash to %s but %s is recorded: a changed prompt set needs a new version and hash", got, b.SHA256)
	}
	d, err := dataset.Open(context.Background(), "builtin", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() < 200 || d.Len() != b.Count || d.Skipped != 0 || d.SHA256 != b.SHA256 || d.Version != b.Version || d.Format != "builtin" {
		t.Fatalf("builtin: %d prompts (count %d), %d skipped, sha %s, version %q, format %q", d.Len(), b.Count, d.Skipped, d.SHA256, d.Version, d.Format)
	}
	ids, texts := map[string]bool{}, map[string]bool{}
	shortest, longest := 1<<30, 0
	for _, p := range d.Prompts {
		if ids[p.ID] || texts[p.Text] {
			t.Errorf("duplicate prompt %s", p.ID)
		}
		ids[p.ID], texts[p.Text] = true, true
		shortest, longest = min(shortest, len(p.Text)), max(longest, len(p.Text))
	}
	if shortest > 20 || longest < 1500 {
		t.Errorf("lengths %d…%d chars: want a few words to several paragraphs", shortest, longest)
	}
	tasks := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b.Data())), "\n") {
		var task string
		if _, err := fmt.Sscanf(line[strings.Index(line, `"task": "`)+len(`"task": "`):], "%s", &task); err == nil {
			tasks[strings.Trim(task, `",`)]++
		}
	}
	for _, want := range []string{"summarise", "explain", "code", "translate", "reason", "creative", "extract", "classify", "qa"} {
		if tasks[want] < 5 {
			t.Errorf("task %s has %d prompts, want ≥ 5 (tasks: %v)", want, tasks[want], tasks)
		}
	}
}

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind dataset.SourceKind
		n    int
		err  bool
	}{
		{"builtin", dataset.SourceBuiltin, 0, false},
		{"synthetic:128", dataset.SourceSynthetic, 128, false},
		{"synthetic:", 0, 0, true},
		{"synthetic:-1", 0, 0, true},
		{"synthetic:2000000", 0, 0, true},
		{"data/x.jsonl", dataset.SourceFile, 0, false},
		{"", 0, 0, true},
	} {
		s, err := dataset.ParseSource(tc.in)
		if (err != nil) != tc.err || (err == nil && (s.Kind != tc.kind || s.InputTokens != tc.n)) {
			t.Errorf("ParseSource(%q) = %+v, %v", tc.in, s, err)
		}
	}
}

func TestNonUTF8BytesAreReplacedAndCounted(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		data         string
		wantTexts    []string
		wantNonUTF8  []bool
	}{
		{name: "jsonl", format: "jsonl", data: "{\"prompt\": \"caf\xe9 au lait\"}\n{\"prompt\": \"ok \uFFFD kept\"}\n{\"prompt\": \"fine\", \"note\": \"\xff\"}\n",
			wantTexts: []string{"caf\uFFFD au lait", "ok \uFFFD kept", "fine"}, wantNonUTF8: []bool{true, false, false}},
		{name: "text", format: "text", data: "plain\nbad \xc3\x28 byte\n",
			wantTexts: []string{"plain", "bad \uFFFD( byte"}, wantNonUTF8: []bool{false, true}},
		{name: "alpaca", format: "alpaca", data: "[{\"instruction\": \"a\xffb\"}, {\"instruction\": \"c\"}]",
			wantTexts: []string{"a\uFFFDb", "c"}, wantNonUTF8: []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := dataset.Parse("x", []byte(tc.data), tc.format, "")
			if err != nil {
				t.Fatal(err)
			}
			if d.Len() != len(tc.wantTexts) {
				t.Fatalf("%d prompts, want %d", d.Len(), len(tc.wantTexts))
			}
			want := 0
			for i, p := range d.Prompts {
				if p.Text != tc.wantTexts[i] || p.NonUTF8 != tc.wantNonUTF8[i] {
					t.Errorf("prompt %d: %q non-UTF-8 %v; want %q %v", i, p.Text, p.NonUTF8, tc.wantTexts[i], tc.wantNonUTF8[i])
				}
				if tc.wantNonUTF8[i] {
					want++
				}
			}
			if got := dataset.NonUTF8(d.Prompts); got != want {
				t.Errorf("NonUTF8 = %d, want %d", got, want)
			}
		})
	}
}

package tokenizer_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/tokenizer"
	"github.com/lemctl/lemctl/sdk"
)

func load(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	v := testenv.Vocab(t)
	tk, err := tokenizer.LoadFiles(v.EncoderJSON, v.VocabBPE)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// corpus returns the comparison strings: hand-picked cases from testdata/corpus.txt (one per
// line, Go-quoted) and systematic combinations of the pattern's character classes.
func corpus(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "corpus.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := unquote(line)
		if err != nil {
			t.Fatalf("testdata/corpus.txt: %q: %v", line, err)
		}
		out = append(out, s)
	}
	// Every pair of pieces, to cross every class boundary the pattern has.
	pieces := []string{"a", "Zz", " ", "  ", "\n", "\t ", "7", " 42", "'s", "'ll", "!", " ?!", "é", "日本", "😀", "\u00a0", "\u3000", "١٢", "'"}
	for _, a := range pieces {
		for _, b := range pieces {
			out = append(out, a+b)
		}
	}
	// Long words and runs take the heap merge path (longer than 64 bytes).
	out = append(out,
		strings.Repeat("abracadabra", 20),
		strings.Repeat("1234567890", 30),
		strings.Repeat("!?", 100)+" and "+strings.Repeat(".", 257),
		" "+strings.Repeat("antidisestablishmentarianism", 10),
		strings.Repeat("日本語", 40),
		strings.Repeat("😀", 50),
		strings.Repeat(" ", 300)+"x",
	)
	return out
}

func unquote(s string) (string, error) {
	var v string
	err := json.Unmarshal([]byte(s), &v)
	return v, err
}

// jsEncode runs gpt-3-encoder's own JavaScript encoder on every string and, for each id list
// in decode, its decoder.
func jsEncode(t *testing.T, texts []string, decode [][]int32) ([][]int32, []string) {
	t.Helper()
	dir, node := testenv.JSEncoder(t)
	script := fmt.Sprintf(`const enc = require(%q);
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  process.stdout.write(JSON.stringify({
    ids: req.texts.map(s => enc.encode(s)),
    texts: req.decode.map(ids => enc.decode(ids)),
  }));
});`, filepath.Join(dir, "index.js"))
	cmd := exec.Command(node, "-e", script)
	req, _ := json.Marshal(map[string]any{"texts": texts, "decode": decode})
	cmd.Stdin = strings.NewReader(string(req))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res struct {
		IDs   [][]int32 `json:"ids"`
		Texts []string  `json:"texts"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output: %v", err)
	}
	return res.IDs, res.Texts
}

func TestMatchesJavaScriptEncoder(t *testing.T) {
	tk := load(t)
	texts := corpus(t)
	if len(texts) < 200 {
		t.Fatalf("only %d comparison strings; want ≥ 200", len(texts))
	}
	// Decode slices that split multi-byte characters, to compare the U+FFFD handling.
	var slices [][]int32
	for _, s := range texts {
		ids := tk.Encode(s)
		for k := 1; k < len(ids) && k < 4; k++ {
			slices = append(slices, ids[:k], ids[k:])
		}
	}
	want, wantText := jsEncode(t, texts, slices)
	mismatches := 0
	for i, s := range texts {
		got := tk.Encode(s)
		if len(got) == 0 && len(want[i]) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want[i]) {
			mismatches++
			t.Errorf("Encode(%q) = %v, gpt-3-encoder gives %v", s, got, want[i])
		}
	}
	for i, ids := range slices {
		got, err := tk.Decode(ids)
		if err != nil {
			t.Fatal(err)
		}
		// TextDecoder drops a leading byte-order mark; Decode keeps every character.
		if got != wantText[i] && !(strings.HasPrefix(got, "\ufeff") && got[3:] == wantText[i]) {
			t.Errorf("Decode(%v) = %q, gpt-3-encoder gives %q", ids, got, wantText[i])
		}
	}
	t.Logf("compared %d strings and %d decodes with gpt-3-encoder; %d mismatches", len(texts), len(slices), mismatches)
}

func TestRoundTrip(t *testing.T) {
	tk := load(t)
	texts := append(corpus(t), "", string([]byte{0xff, 0xfe, 'a', 0xc3}), strings.Repeat("ab ", 500))
	for _, s := range texts {
		ids := tk.Encode(s)
		b, err := tk.DecodeBytes(ids)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != s {
			t.Errorf("DecodeBytes(Encode(%q)) = %q", s, b)
		}
		if utf8.ValidString(s) {
			if got, _ := tk.Decode(ids); got != s {
				t.Errorf("Decode(Encode(%q)) = %q", s, got)
			}
		}
	}
}

func TestKnownIDs(t *testing.T) {
	tk := load(t)
	for _, tc := range []struct {
		text string
		want []int32
	}{
		{"Hello, my name is", []int32{15496, 11, 616, 1438, 318}},
		{"The quick brown fox", []int32{464, 2068, 7586, 21831}},
		{"<|endoftext|>", []int32{27, 91, 437, 1659, 5239, 91, 29}}, // plain text, not the special id
	} {
		if got := tk.Encode(tc.text); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	if id, ok := tk.ID("<|endoftext|>"); !ok || id != 50256 {
		t.Errorf("ID(<|endoftext|>) = %d, %v", id, ok)
	}
	if tk.VocabSize() != 50257 {
		t.Errorf("VocabSize = %d", tk.VocabSize())
	}
}

func TestPreTokenize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"I'm   here", []string{"I", "'m", "  ", " here"}},
		{"a\n\nb", []string{"a", "\n", "\n", "b"}},
		{"x  ", []string{"x", "  "}},
		{"  x", []string{" ", " x"}},
		{"abc123 456!!", []string{"abc", "123", " 456", "!!"}},
		{" \t", []string{" \t"}},
	} {
		if got := tokenizer.PreTokenize(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PreTokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTokenizerJSON(t *testing.T) {
	tk := load(t)
	v := testenv.Vocab(t)
	// Build a tokenizer.json from the same vocabulary, with both merge encodings.
	vocab, _ := os.ReadFile(v.EncoderJSON)
	mergesRaw, _ := os.ReadFile(v.VocabBPE)
	var mergeStrings []string
	var mergePairs [][2]string
	for i, line := range strings.Split(string(mergesRaw), "\n") {
		if i == 0 || line == "" {
			continue
		}
		mergeStrings = append(mergeStrings, line)
		p := strings.SplitN(line, " ", 2)
		mergePairs = append(mergePairs, [2]string{p[0], p[1]})
	}
	for name, merges := range map[string]any{"strings": mergeStrings, "pairs": mergePairs} {
		t.Run(name, func(t *testing.T) {
			m, _ := json.Marshal(merges)
			doc := fmt.Sprintf(`{"model":{"type":"BPE","vocab":%s,"merges":%s},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false},"added_tokens":[{"id":50256,"content":"<|endoftext|>","special":true}]}`, vocab, m)
			path := filepath.Join(t.TempDir(), "tokenizer.json")
			os.WriteFile(path, []byte(doc), 0o644)
			tj, err := tokenizer.Load([]string{path})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range corpus(t)[:60] {
				if a, b := tj.Encode(s), tk.Encode(s); !reflect.DeepEqual(a, b) {
					t.Errorf("tokenizer.json Encode(%q) = %v, vocab.json+merges.txt give %v", s, a, b)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	tk := load(t)
	if _, err := tk.Decode([]int32{1, 50257}); !errors.Is(err, sdk.ErrInvalidArgument) || !strings.Contains(err.Error(), "50257") {
		t.Errorf("Decode(out of range) err = %v", err)
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	for _, tc := range []struct {
		name  string
		files []string
		is    error
		msg   string
	}{
		{"no files", []string{filepath.Join(dir, "config.json")}, sdk.ErrNotFound, "need tokenizer.json"},
		{"vocab not JSON", []string{write("vocab.json", "nope"), write("merges.txt", "#version: 0.2\n")}, sdk.ErrInvalidArgument, "vocab.json"},
		{"bad merge line", []string{write("vocab.json", `{"a":0}`), write("merges.txt", "#version: 0.2\na b c\n")}, sdk.ErrInvalidArgument, "merges.txt:2"},
		{"not byte-level", []string{write("tokenizer.json", `{"model":{"type":"WordPiece","vocab":{}}}`)}, sdk.ErrInvalidArgument, "WordPiece"},
		{"missing byte tokens", []string{write("vocab.json", `{"a":0}`), write("merges.txt", "#version: 0.2\n")}, sdk.ErrInvalidArgument, "byte token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tokenizer.Load(tc.files)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v; want %v mentioning %q", err, tc.is, tc.msg)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	tk := load(b)
	text := strings.Repeat("The quick brown fox jumps over the lazy dog; 1234 émigré naïve 😀. ", 20)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tk.Encode(text)
	}
}

// BenchmarkEncodeLongWord encodes one 64 KiB word, which takes the heap merge (O(n log n); the
// reference loop is quadratic in the word's length).
func BenchmarkEncodeLongWord(b *testing.B) {
	tk := load(b)
	text := strings.Repeat("abracadabra", 64<<10/11)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tk.Encode(text)
	}
}

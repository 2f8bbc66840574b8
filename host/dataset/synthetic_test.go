package dataset_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/dataset"
)

// wordTokenizer is a fake tokenizer: one token per whitespace-separated word, the id being the
// word's index in a vocabulary built as words are seen.
type wordTokenizer struct {
	vocab map[string]int32
	words []string
	calls int
	fail  error
}

func newWordTokenizer() *wordTokenizer { return &wordTokenizer{vocab: map[string]int32{}} }

func (w *wordTokenizer) Tokenize(_ context.Context, texts []string) ([][]int32, error) {
	w.calls++
	if w.fail != nil {
		return nil, w.fail
	}
	out := make([][]int32, len(texts))
	for i, t := range texts {
		for _, word := range strings.Fields(t) {
			id, ok := w.vocab[word]
			if !ok {
				id = int32(len(w.words))
				w.vocab[word] = id
				w.words = append(w.words, word)
			}
			out[i] = append(out[i], id)
		}
	}
	return out, nil
}

func (w *wordTokenizer) Detokenize(_ context.Context, ids [][]int32) ([]string, error) {
	out := make([]string, len(ids))
	for i, seq := range ids {
		words := make([]string, len(seq))
		for j, id := range seq {
			words[j] = w.words[id]
		}
		out[i] = strings.Join(words, " ")
	}
	return out, nil
}

func TestSynthetic(t *testing.T) {
	for _, tc := range []struct{ tokens, count int }{{1, 1}, {16, 48}, {128, 10}, {5000, 3}} {
		tok := newWordTokenizer()
		d, err := dataset.Open(context.Background(), "synthetic:"+strconv.Itoa(tc.tokens), dataset.Options{Tokenizer: tok, Count: tc.count})
		if err != nil {
			t.Fatal(err)
		}
		if d.Len() != tc.count || d.Name != "synthetic:"+strconv.Itoa(tc.tokens) || d.Format != "synthetic" || d.Skipped != 0 {
			t.Fatalf("%+v", d)
		}
		for i, p := range d.Prompts {
			if len(p.IDs) != tc.tokens {
				t.Errorf("prompt %d has %d tokens, want exactly %d", i, len(p.IDs), tc.tokens)
			}
			if got := len(strings.Fields(p.Text)); got != tc.tokens {
				t.Errorf("prompt %d text has %d words, want %d", i, got, tc.tokens)
			}
		}
		if tc.count > 1 && tc.tokens > 1 && d.Prompts[0].Text == d.Prompts[1].Text {
			t.Errorf("consecutive synthetic prompts are identical")
		}
		again, err := dataset.Open(context.Background(), d.Name, dataset.Options{Tokenizer: newWordTokenizer(), Count: tc.count})
		if err != nil || again.SHA256 != d.SHA256 {
			t.Errorf("not reproducible: %s vs %s (%v)", d.SHA256, again.SHA256, err)
		}
		if tok.calls != 1 {
			t.Errorf("Tokenize called %d times, want once (one batched call)", tok.calls)
		}
	}
}

func TestSyntheticErrors(t *testing.T) {
	boom := errors.New("loader gone")
	failing := newWordTokenizer()
	failing.fail = boom
	for _, tc := range []struct {
		name string
		opts dataset.Options
		want string
		is   error
	}{
		{"no tokenizer", dataset.Options{Count: 4}, "needs the model's tokenizer", dataset.ErrNoTokenizer},
		{"no count", dataset.Options{Tokenizer: newWordTokenizer()}, "needs a prompt count ≥ 1", nil},
		{"tokenizer fails", dataset.Options{Tokenizer: failing, Count: 2}, "tokenize the corpus: loader gone", boom},
	} {
		_, err := dataset.Open(context.Background(), "synthetic:8", tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

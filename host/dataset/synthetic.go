package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// ErrNoTokenizer is returned for a synthetic dataset without a tokenizer.
var ErrNoTokenizer = errors.New("a synthetic dataset needs the model's tokenizer")

// Synthetic builds count prompts of exactly inputTokens token ids each. The ids are windows of
// the built-in prompt set tokenized with the model's tokenizer (so they are real text for that
// model), taken one after the other through the concatenated corpus and wrapping around; each
// prompt's Text is its ids detokenized, for display. The engine is given the ids, so the length
// is exact even where re-tokenizing the text would not round-trip.
func Synthetic(ctx context.Context, inputTokens, count int, tok Tokenizer) (*Dataset, error) {
	name := SyntheticPrefix + strconv.Itoa(inputTokens)
	switch {
	case inputTokens < 1 || inputTokens > MaxSyntheticTokens:
		return nil, fmt.Errorf("dataset %s: input tokens must be in [1, %d]", name, MaxSyntheticTokens)
	case count < 1:
		return nil, fmt.Errorf("dataset %s: a synthetic dataset needs a prompt count ≥ 1 (workload.prompts / -n), got %d", name, count)
	case tok == nil:
		return nil, fmt.Errorf("dataset %s: %w", name, ErrNoTokenizer)
	}
	corpus, err := Parse(DefaultBuiltin, Builtin(DefaultBuiltin).data, FormatJSONL, "")
	if err != nil {
		return nil, fmt.Errorf("dataset %s: built-in corpus: %w", name, err)
	}
	texts := make([]string, len(corpus.Prompts))
	for i, p := range corpus.Prompts {
		texts[i] = p.Text
	}
	ids, err := tok.Tokenize(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: tokenize the corpus: %w", name, err)
	}
	if len(ids) != len(texts) {
		return nil, fmt.Errorf("dataset %s: tokenizer returned %d sequences for %d texts", name, len(ids), len(texts))
	}
	var stream []int32
	for _, s := range ids {
		stream = append(stream, s...)
	}
	if len(stream) == 0 {
		return nil, fmt.Errorf("dataset %s: the tokenizer produced no tokens for the corpus", name)
	}
	windows := make([][]int32, count)
	h := sha256.New()
	var buf [4]byte
	pos := 0
	for i := range windows {
		w := make([]int32, inputTokens)
		for j := range w {
			w[j] = stream[pos]
			pos = (pos + 1) % len(stream)
			binary.LittleEndian.PutUint32(buf[:], uint32(w[j]))
			h.Write(buf[:])
		}
		windows[i] = w
	}
	texts, err = tok.Detokenize(ctx, windows)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: detokenize: %w", name, err)
	}
	if len(texts) != count {
		return nil, fmt.Errorf("dataset %s: detokenizer returned %d texts for %d prompts", name, len(texts), count)
	}
	d := &Dataset{Name: name, Format: "synthetic", SHA256: hex.EncodeToString(h.Sum(nil))}
	d.Prompts = make([]Prompt, count)
	for i := range d.Prompts {
		d.Prompts[i] = Prompt{ID: strconv.Itoa(i), Text: texts[i], IDs: windows[i]}
	}
	return d, nil
}

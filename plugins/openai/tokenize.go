package openai

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/lemctl/lemctl/plugins/onnx/thirdparty"
	"github.com/lemctl/lemctl/plugins/onnx/tokenizer"
	"github.com/lemctl/lemctl/sdk"
)

// textTokenizer turns texts into ids and back for one model.
type textTokenizer interface {
	Encode(ctx context.Context, texts []string) ([][]int32, error)
	Decode(ctx context.Context, ids [][]int32) ([]string, error)
	// Info describes it for sdk.Artifact.Tokenizer.
	Info() sdk.TokenizerInfo
}

// thirdparty.Env names the folder `make setup` fills (ONNX Runtime, the GPT-2 vocabulary).
// newTokenizer opens the tokenizer source names (the tokenizer key) for model on c (c may be
// nil when src is not "server"). It returns nil, nil for "none".
func newTokenizer(src, model string, c *client) (textTokenizer, error) {
	switch {
	case src == TokenizerNone:
		return nil, nil
	case src == TokenizerServer:
		if c == nil {
			return nil, fmt.Errorf("%w: %s = %q needs %s", sdk.ErrFailedPrecondition, KeyTokenizer, src, KeyBaseURL)
		}
		return &serverTokenizer{c: c, model: model}, nil
	case strings.HasPrefix(src, syntheticPrefix):
		// Every synthetic preset ships the GPT-2 vocabulary (encoder.json + vocab.bpe).
		var tried []string
		for _, d := range thirdparty.Dirs() {
			enc, bpe := filepath.Join(d, "gpt2", "encoder.json"), filepath.Join(d, "gpt2", "vocab.bpe")
			_, e1 := os.Stat(enc)
			_, e2 := os.Stat(bpe)
			if e1 == nil && e2 == nil {
				tk, err := tokenizer.LoadFiles(enc, bpe)
				if err != nil {
					return nil, fmt.Errorf("%s = %q: %w", KeyTokenizer, src, err)
				}
				return &localTokenizer{tk: tk, info: sdk.TokenizerInfo{Kind: "byte-level-bpe", Files: []string{enc, bpe}, VocabSize: tk.VocabSize()}}, nil
			}
			tried = append(tried, filepath.Join(d, "gpt2"))
		}
		return nil, fmt.Errorf("%w: %s = %q: the GPT-2 vocabulary (encoder.json and vocab.bpe) synthetic presets use is not in %s; run `make setup` in the lemctl source tree or set $%s",
			sdk.ErrFailedPrecondition, KeyTokenizer, src, strings.Join(tried, ", "), thirdparty.Env)
	}
	st, err := os.Stat(src)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s = %q is not a directory (valid: %s)", sdk.ErrNotFound, KeyTokenizer, src, tokenizerValid)
	}
	var files []string
	for _, name := range []string{"tokenizer.json", "vocab.json", "merges.txt"} {
		if p := filepath.Join(src, name); fileExists(p) {
			files = append(files, p)
		}
	}
	tk, err := tokenizer.Load(files)
	if err != nil {
		return nil, fmt.Errorf("%s = %q: %w", KeyTokenizer, src, err)
	}
	return &localTokenizer{tk: tk, info: sdk.TokenizerInfo{Kind: "byte-level-bpe", Files: files, VocabSize: tk.VocabSize()}}, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// localTokenizer is the onnx plugin's byte-level BPE on local files.
type localTokenizer struct {
	tk   *tokenizer.Tokenizer
	info sdk.TokenizerInfo
}

func (l *localTokenizer) Encode(_ context.Context, texts []string) ([][]int32, error) {
	out := make([][]int32, len(texts))
	for i, t := range texts {
		out[i] = l.tk.Encode(t)
	}
	return out, nil
}

func (l *localTokenizer) Decode(_ context.Context, ids [][]int32) ([]string, error) {
	out := make([]string, len(ids))
	for i, x := range ids {
		s, err := l.tk.Decode(x)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func (l *localTokenizer) Info() sdk.TokenizerInfo { return l.info }

// serverTokenizer asks the server: POST {root}/tokenize {model, prompt} → {tokens, count,
// max_model_len}, POST {root}/detokenize {model, tokens} → {prompt} (vLLM's shape; lemctl serve
// answers the same). The server decides whether special tokens are added, as it does for a
// completion's prompt.
type serverTokenizer struct {
	c     *client
	model string
}

func (s *serverTokenizer) Encode(ctx context.Context, texts []string) ([][]int32, error) {
	out := make([][]int32, len(texts))
	url := rootURL(s.c.base) + "/tokenize"
	for i, t := range texts {
		var r struct {
			Tokens []int32 `json:"tokens"`
		}
		if err := s.c.callJSON(ctx, http.MethodPost, url, map[string]any{"model": s.model, "prompt": t}, &r); err != nil {
			return nil, fmt.Errorf("%s = %q: %w", KeyTokenizer, TokenizerServer, err)
		}
		out[i] = r.Tokens
	}
	return out, nil
}

func (s *serverTokenizer) Decode(ctx context.Context, ids [][]int32) ([]string, error) {
	out := make([]string, len(ids))
	url := rootURL(s.c.base) + "/detokenize"
	for i, x := range ids {
		var r struct {
			Prompt string `json:"prompt"`
		}
		if x == nil {
			x = []int32{}
		}
		if err := s.c.callJSON(ctx, http.MethodPost, url, map[string]any{"model": s.model, "tokens": x}, &r); err != nil {
			return nil, fmt.Errorf("%s = %q: %w", KeyTokenizer, TokenizerServer, err)
		}
		out[i] = r.Prompt
	}
	return out, nil
}

func (s *serverTokenizer) Info() sdk.TokenizerInfo {
	return sdk.TokenizerInfo{Kind: "server"}
}

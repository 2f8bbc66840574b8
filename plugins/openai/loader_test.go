package openai

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/thirdparty"
	"github.com/lemctl/lemctl/sdk"
)

// NewLoaderWith returns a loader configured with table.
func NewLoaderWith(t testing.TB, table map[string]any) *Loader {
	t.Helper()
	l := NewLoader()
	configure(t, table, l.SetSettings)
	return l
}

func TestResolveServedModel(t *testing.T) {
	f := newFake(t)
	ctx := context.Background()
	l := NewLoaderWith(t, map[string]any{KeyBaseURL: f.base()})
	a, err := l.Resolve(ctx, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if a.Format != FormatServed || a.Reference != "tiny" || a.Path != "" || a.SHA256 != "" || a.ContextLength != 2048 ||
		a.Metadata[MetaBaseURL] != f.base() || a.Metadata[MetaTokenizer] != TokenizerServer || a.Metadata["owned_by"] != "lemctl-test" ||
		a.Metadata[MetaServer] != "fake-1.0" || a.Tokenizer.Kind != "server" {
		t.Fatalf("artifact %+v", *a)
	}
	if _, err := l.Resolve(ctx, "nope"); !errors.Is(err, sdk.ErrNotFound) || !strings.Contains(err.Error(), `model.ref "nope"`) || !strings.Contains(err.Error(), `["tiny"]`) {
		t.Fatalf("Resolve of a model not served: %v", err)
	}
	if _, err := NewLoader().Resolve(ctx, "tiny"); !errors.Is(err, sdk.ErrFailedPrecondition) || !strings.Contains(err.Error(), KeyBaseURL) {
		t.Fatalf("Resolve without base_url: %v", err)
	}

	// The server's tokenizer, both ways.
	ids, err := l.Tokenize(ctx, "tiny", []string{"hé", ""})
	if err != nil || len(ids) != 2 || len(ids[0]) != 3 || len(ids[1]) != 0 {
		t.Fatalf("Tokenize: %v, %v", ids, err)
	}
	back, err := l.Detokenize(ctx, "tiny", ids)
	if err != nil || back[0] != "hé" || back[1] != "" {
		t.Fatalf("Detokenize: %q, %v", back, err)
	}

	// The engine finds the base URL and the tokenizer in the artifact.
	e := NewEngine()
	lr, err := e.Load(ctx, sdk.LoadRequest{Artifact: *a})
	if err != nil || lr.Endpoint != f.base() {
		t.Fatalf("Load of the resolved artifact: %v, %v", lr, err)
	}
	_ = e.Unload(ctx)
}

func TestLocalTokenizers(t *testing.T) {
	f := newFake(t)
	ctx := context.Background()
	tp := os.Getenv(thirdparty.Env)
	if tp == "" {
		tp, _ = filepath.Abs("../../third_party")
	}
	if _, err := os.Stat(filepath.Join(tp, "gpt2", "encoder.json")); err != nil {
		t.Skipf("the GPT-2 vocabulary is not set up (make setup): %v", err)
	}
	t.Setenv(thirdparty.Env, tp)
	l := NewLoaderWith(t, map[string]any{KeyBaseURL: f.base(), KeyTokenizer: "synthetic:gpt2-tiny"})
	ids, err := l.Tokenize(ctx, "tiny", []string{"Hello world"})
	if err != nil || len(ids[0]) != 2 || ids[0][0] != 15496 || ids[0][1] != 995 {
		t.Fatalf("GPT-2 tokens of \"Hello world\": %v, %v", ids, err)
	}
	a, err := l.Resolve(ctx, "tiny")
	if err != nil || a.Tokenizer.Kind != "byte-level-bpe" || a.VocabSize != 50257 || len(a.Files) != 2 {
		t.Fatalf("artifact with the GPT-2 tokenizer: %+v, %v", a, err)
	}

	// A model directory with vocab.json + merges.txt.
	dir := t.TempDir()
	copyFile(t, filepath.Join(tp, "gpt2", "encoder.json"), filepath.Join(dir, "vocab.json"))
	copyFile(t, filepath.Join(tp, "gpt2", "vocab.bpe"), filepath.Join(dir, "merges.txt"))
	l = NewLoaderWith(t, map[string]any{KeyBaseURL: f.base(), KeyTokenizer: dir})
	back, err := l.Detokenize(ctx, "tiny", [][]int32{{15496, 995}})
	if err != nil || back[0] != "Hello world" {
		t.Fatalf("Detokenize with %s: %q, %v", dir, back, err)
	}

	l = NewLoaderWith(t, map[string]any{KeyBaseURL: f.base(), KeyTokenizer: filepath.Join(dir, "missing")})
	if _, err := l.Tokenize(ctx, "tiny", []string{"x"}); !errors.Is(err, sdk.ErrNotFound) || !strings.Contains(err.Error(), KeyTokenizer) {
		t.Fatalf("a tokenizer directory that does not exist: %v", err)
	}
	l = NewLoaderWith(t, map[string]any{KeyBaseURL: f.base(), KeyTokenizer: TokenizerNone})
	if _, err := l.Tokenize(ctx, "tiny", []string{"x"}); !errors.Is(err, sdk.ErrUnimplemented) {
		t.Fatalf("tokenizer none: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

package onnx_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx"
	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// client serves the plugin over an in-process gRPC connection and returns the host's client.
func client(t *testing.T) *hostclient.Client {
	t.Helper()
	c, err := hostclient.InProcess(context.Background(), onnx.New())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestBadInputThroughRPC: every bad input is a clear error on the host's side of the RPC,
// with its sentinel intact, and the plugin keeps serving afterwards.
func TestBadInputThroughRPC(t *testing.T) {
	v := testenv.Vocab(t)
	c := client(t)
	ctx := context.Background()
	cache := t.TempDir()
	errs, err := c.Configure(ctx, map[string]any{"cache_dir": cache, "vocab_dir": filepath.Dir(v.EncoderJSON)})
	if err != nil || len(errs) > 0 {
		t.Fatalf("Configure: %v %v", errs, err)
	}
	l := c.Loader()
	good, err := l.Resolve(ctx, "synthetic:gpt2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	noTokenizer := t.TempDir()
	for _, f := range []string{"model.onnx", "model.onnx.data", "config.json"} {
		b, _ := os.ReadFile(filepath.Join(good.Metadata["model_dir"], f))
		os.WriteFile(filepath.Join(noTokenizer, f), b, 0o644)
	}
	corrupt := t.TempDir()
	for _, f := range []string{"config.json", "vocab.json", "merges.txt"} {
		b, _ := os.ReadFile(filepath.Join(good.Metadata["model_dir"], f))
		os.WriteFile(filepath.Join(corrupt, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(corrupt, "model.onnx"), []byte("this is not an onnx file"), 0o644)
	for _, tc := range []struct {
		ref  string
		is   error
		want string
	}{
		{"synthetic:gpt-9", sdk.ErrInvalidArgument, "valid presets: gpt2-124m, gpt2-tiny, llama-tiny"},
		{filepath.Join(cache, "nope"), sdk.ErrNotFound, "does not exist"},
		{noTokenizer, sdk.ErrNotFound, "vocab.json + merges.txt (or tokenizer.json)"},
		{corrupt, sdk.ErrInvalidArgument, "corrupt or not an ONNX model"},
	} {
		_, err := l.Resolve(ctx, tc.ref)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%s) over RPC: err = %v; want %v mentioning %q", tc.ref, err, tc.is, tc.want)
		}
	}
	if _, err := l.Detokenize(ctx, "synthetic:gpt2-tiny", [][]int32{{-1}}); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("Detokenize(-1) over RPC: %v", err)
	}
	// Still up.
	ids, err := l.Tokenize(ctx, "synthetic:gpt2-tiny", []string{"still here"})
	if err != nil || len(ids[0]) == 0 {
		t.Fatalf("plugin did not survive bad input: %v", err)
	}
	if info := c.Info(); !info.Serves(sdk.KindLoader) || info.Name != "onnx" {
		t.Errorf("Info = %+v", info)
	}
}

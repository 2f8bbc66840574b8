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
	"github.com/lemctl/lemctl/plugins/onnx/loader"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

// TestConformance runs the sdk's conformance suite on the plugin as a loader and an engine, over gRPC.
func TestConformance(t *testing.T) {
	v := testenv.Vocab(t)
	vocabDir := filepath.Dir(v.EncoderJSON)
	cache := t.TempDir()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	p := onnx.New()
	cfg := map[string]any{"cache_dir": cache, "vocab_dir": vocabDir}
	if errs, err := p.Configure(context.Background(), sdk.Config(cfg)); err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	art, err := p.Loader.Resolve(context.Background(), "synthetic:gpt2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	plugintest.Run(t, p, plugintest.Options{
		Config: cfg,
		Engine: plugintest.EngineOptions{Artifact: art, Device: sdk.Device{Kind: "cpu", Index: -1}},
		BadConfigs: []plugintest.BadConfig{
			{Table: map[string]any{"library_path": "/lib/x86_64-linux-gnu/libc.so.6"}, Key: "library_path"},
			{Table: map[string]any{"library_path": filepath.Join(cache, "missing.so")}, Key: "library_path"},
			{Table: map[string]any{"cache_dir": file}, Key: "cache_dir"},
			{Table: map[string]any{"vocab_dir": t.TempDir()}, Key: "vocab_dir"},
		},
		Loader: plugintest.LoaderOptions{Reference: "synthetic:gpt2-tiny"},
	})
}

// TestConfigureWrongORT: a wrong ONNX Runtime named by library_path is a per-key error saying
// which version is needed.
func TestConfigureWrongORT(t *testing.T) {
	p := onnx.New()
	errs, err := p.Configure(context.Background(), sdk.Config{"library_path": "/lib/x86_64-linux-gnu/libc.so.6"})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || errs[0].Key != "library_path" || !strings.Contains(errs[0].Valid, "1.24.1") {
		t.Fatalf("Configure errors = %+v", errs)
	}
	if p.Kinds()[0] != sdk.KindLoader {
		t.Errorf("kinds = %v", p.Kinds())
	}
	_, err = p.Loader.Resolve(context.Background(), "synthetic:nope")
	if !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("Resolve(synthetic:nope) = %v", err)
	}
}

func TestConfigureKeepsSettings(t *testing.T) {
	v := testenv.Vocab(t)
	lib := filepath.Join(testenv.ThirdParty(), "onnxruntime", "libonnxruntime.so.1")
	if _, err := os.Stat(lib); err != nil {
		testenv.Missing(t, "ONNX Runtime not found at %s (run `make setup`)", lib)
	}
	l := loader.New()
	cache := t.TempDir()
	errs, err := l.Configure(context.Background(), sdk.Config{"library_path": lib, "cache_dir": cache, "vocab_dir": filepath.Dir(v.EncoderJSON)})
	if err != nil || len(errs) > 0 {
		t.Fatalf("Configure: %v %v", errs, err)
	}
	if s := l.Settings(); s.LibraryPath != lib || s.CacheDir != cache || s.VocabDir != filepath.Dir(v.EncoderJSON) {
		t.Errorf("Settings = %+v", s)
	}
}

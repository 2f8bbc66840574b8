package engine_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lemctl/lemctl/plugins/onnx"
	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

// pluginConfig is a configuration table for the onnx plugin in tests: the set-up folder's
// vocabulary and ONNX Runtime, synthetic models cached in cache.
func pluginConfig(t testing.TB, cache string) map[string]any {
	t.Helper()
	v := testenv.Vocab(t)
	testenv.ORT(t)
	lib, _ := model.ORTLibrary()
	return map[string]any{"cache_dir": cache, "vocab_dir": filepath.Dir(v.EncoderJSON), "library_path": lib, "threads": 1.0}
}

// TestConformance runs the sdk's conformance suite on the whole onnx plugin — loader and
// engine — over gRPC, with the artifact its own loader resolves.
func TestConformance(t *testing.T) {
	cfg := pluginConfig(t, t.TempDir())
	p := onnx.New()
	sc, errs := sdk.ValidateConfig(p.Schema, cfg)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if errs, err := p.Configure(context.Background(), sc); err != nil || len(errs) > 0 {
		t.Fatal(errs, err)
	}
	a, err := p.Loader.Resolve(context.Background(), "synthetic:gpt2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	plugintest.Run(t, onnx.New(), plugintest.Options{
		Config: cfg,
		BadConfigs: []plugintest.BadConfig{
			{Table: map[string]any{"provider": "tpu"}, Key: "provider"},
			{Table: map[string]any{"threads": -1}, Key: "threads"},
			{Table: map[string]any{"graph_optimization": "max"}, Key: "graph_optimization"},
			{Table: map[string]any{"max_batch_size": 1.5}, Key: "max_batch_size"},
		},
		Loader: plugintest.LoaderOptions{Reference: "synthetic:gpt2-tiny"},
		Engine: plugintest.EngineOptions{Artifact: a, Device: sdk.Device{Kind: "cpu", Index: -1}},
	})
}

// pluginBinary returns the built plugin: $LEM_BIN/plugins/lem-plugin-onnx (make test sets
// LEM_BIN), else one built into dir.
func pluginBinary(t testing.TB, dir string) string {
	t.Helper()
	if d := os.Getenv("LEM_BIN"); d != "" {
		p := filepath.Join(d, "plugins", "lem-plugin-onnx")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	out := filepath.Join(dir, "lem-plugin-onnx")
	cmd := exec.Command("go", "build", "-o", out, "../cmd/lem-plugin-onnx")
	cmd.Env = append(os.Environ(), "CGO_CFLAGS=-Wno-deprecated-declarations")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// TestBadInputThroughPlugin drives the real plugin binary: every bad request is a clear error
// whose sdk sentinel survives the RPC, and the plugin stays up and keeps answering.
func TestBadInputThroughPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not building the plugin binary")
	}
	cfg := pluginConfig(t, t.TempDir())
	cfg["max_batch_size"] = 2.0
	bin := pluginBinary(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := hostclient.Open(ctx, bin)
	if err != nil {
		t.Fatalf("open %s: %v", bin, err)
	}
	defer c.Close()
	if !c.Info().Serves(sdk.KindEngine) || !c.Info().Serves(sdk.KindLoader) {
		t.Fatalf("the plugin serves %v, want loader and engine", c.Info().Kinds)
	}
	if errs, err := c.Configure(ctx, cfg); err != nil || len(errs) > 0 {
		t.Fatalf("configure: %v %v", errs, err)
	}
	a, err := c.Loader().Resolve(ctx, "synthetic:gpt2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	e := c.Engine()
	one := []sdk.Prompt{{ID: "a", IDs: []int32{40}}}
	ok := sdk.Decoding{MaxNewTokens: 3, Greedy: true, IgnoreEOS: true}
	gen := func(req sdk.GenerateRequest) (int, error) {
		n := 0
		_, err := e.Generate(ctx, req, func(r sdk.RequestResult) error { n += len(r.OutputIDs); return nil })
		return n, err
	}
	if _, err := gen(sdk.GenerateRequest{Prompts: one, Decoding: ok}); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Errorf("generate before load: %v, want ErrFailedPrecondition", err)
	}
	lr, err := e.Load(ctx, sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if lr.ExecutionProvider != "cpu" || lr.RuntimeVersions["onnxruntime"] != model.RequiredORTVersion || lr.ModelBytes <= 0 || lr.ResidentBytes <= 0 || lr.LoadNS <= 0 {
		t.Errorf("load result %+v", lr)
	}
	long := make([]int32, 1000)
	cases := []struct {
		name string
		req  sdk.GenerateRequest
		want error // nil: must succeed
	}{
		{"zero prompts", sdk.GenerateRequest{Decoding: ok}, sdk.ErrInvalidArgument},
		{"max_new_tokens 0", sdk.GenerateRequest{Prompts: one, Decoding: sdk.Decoding{Greedy: true}}, sdk.ErrInvalidArgument},
		{"max_new_tokens negative", sdk.GenerateRequest{Prompts: one, Decoding: sdk.Decoding{MaxNewTokens: -5, Greedy: true}}, sdk.ErrInvalidArgument},
		{"top_p 0", sdk.GenerateRequest{Prompts: one, Decoding: sdk.Decoding{MaxNewTokens: 2, Temperature: 1}}, sdk.ErrInvalidArgument},
		{"top_p 1.01", sdk.GenerateRequest{Prompts: one, Decoding: sdk.Decoding{MaxNewTokens: 2, Temperature: 1, TopP: 1.01}}, sdk.ErrInvalidArgument},
		{"batch above max_batch_size", sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "a", Text: "x"}, {ID: "b", Text: "y"}, {ID: "c", Text: "z"}}, Decoding: ok}, sdk.ErrInvalidArgument},
		{"prompt longer than the context is truncated", sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: "a", IDs: long}}, Decoding: ok}, nil},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			n, err := gen(cs.req)
			if cs.want == nil && (err != nil || n != 3) {
				t.Errorf("got %d tokens, %v", n, err)
			}
			if cs.want != nil && !errors.Is(err, cs.want) {
				t.Errorf("got %v, want %v", err, cs.want)
			}
			// The plugin is still up and generating.
			if n, err := gen(sdk.GenerateRequest{Prompts: one, Decoding: ok}); err != nil || n != 3 {
				t.Fatalf("after %s: %d tokens, %v", cs.name, n, err)
			}
		})
	}
	if _, err := e.Load(ctx, sdk.LoadRequest{Artifact: *a}); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Errorf("second load: %v", err)
	}
	if err := e.Unload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := gen(sdk.GenerateRequest{Prompts: one, Decoding: ok}); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Errorf("generate after unload: %v", err)
	}
}

package engine

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/loader"
	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/sdk"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from this run")

// cacheDir holds the synthetic models the tests generate, once per test binary.
var cacheDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "onnx-engine-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// resolve returns the artifact of ref from the plugin's own loader, generating synthetic models
// into cache (the test binary's cache when empty).
func resolve(t testing.TB, ref, cache string) *sdk.Artifact {
	t.Helper()
	v := testenv.Vocab(t)
	testenv.ORT(t)
	if cache == "" {
		cache = cacheDir
	}
	l := loader.New()
	l.SetSettings(loader.Settings{CacheDir: cache, VocabDir: filepath.Dir(v.EncoderJSON)})
	a, err := l.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("resolve %s: %v", ref, err)
	}
	return a
}

// load returns an engine with a loaded, unloaded at the end of the test.
func load(t testing.TB, a *sdk.Artifact, s Settings) *Engine {
	t.Helper()
	e := New()
	if s.Provider == "" {
		s = DefaultSettings()
	}
	s.LibraryPath, _ = model.ORTLibrary() // the library testenv.ORT initialised
	e.SetSettings(s)
	if _, err := e.Load(context.Background(), sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}, Threads: 1}); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { e.Unload(context.Background()) })
	return e
}

// collect runs Generate and returns the results by prompt index.
func collect(t testing.TB, e *Engine, req sdk.GenerateRequest) ([]sdk.RequestResult, *sdk.BatchTiming, []int) {
	t.Helper()
	res := make([]sdk.RequestResult, len(req.Prompts))
	var order []int
	bt, err := e.Generate(context.Background(), req, func(r sdk.RequestResult) error {
		res[r.Index] = r
		order = append(order, r.Index)
		return nil
	})
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return res, bt, order
}

// filepathOfORT is the initialised ONNX Runtime library.
func filepathOfORT() (string, string) { return model.ORTLibrary() }

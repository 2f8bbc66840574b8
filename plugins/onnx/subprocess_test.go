package onnx_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// pluginBinary returns the built plugin: $LEM_BIN/plugins/lem-plugin-onnx (make test sets
// LEM_BIN), else one built into a temporary folder.
func pluginBinary(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("LEM_BIN"); d != "" {
		p := filepath.Join(d, "plugins", "lem-plugin-onnx")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if testing.Short() {
		t.Skip("-short: not building the plugin binary")
	}
	out := filepath.Join(t.TempDir(), "lem-plugin-onnx")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/lem-plugin-onnx")
	cmd.Env = append(os.Environ(), "CGO_CFLAGS=-Wno-deprecated-declarations")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// TestSubprocess starts the real plugin binary the way the host does and resolves a model.
func TestSubprocess(t *testing.T) {
	v := testenv.Vocab(t)
	bin := pluginBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := hostclient.Open(ctx, bin)
	if err != nil {
		t.Fatalf("open %s: %v", bin, err)
	}
	defer c.Close()
	info := c.Info()
	if info.Name != "onnx" || !info.Serves(sdk.KindLoader) || len(info.ConfigSchema) < 3 {
		t.Errorf("Info = %+v", info)
	}
	if errs, err := c.Configure(ctx, map[string]any{"cache_dir": t.TempDir(), "vocab_dir": filepath.Dir(v.EncoderJSON)}); err != nil || len(errs) > 0 {
		t.Fatalf("Configure: %v %v", errs, err)
	}
	a, err := c.Loader().Resolve(ctx, "synthetic:llama-tiny")
	if err != nil {
		t.Fatal(err)
	}
	if a.Architecture != "llama" || a.KV.KVHeads != 2 || !a.Synthetic {
		t.Errorf("artifact = %+v", a)
	}
	ids, err := c.Loader().Tokenize(ctx, "synthetic:llama-tiny", []string{"Hello, my name is"})
	if err != nil || len(ids[0]) != 5 {
		t.Errorf("Tokenize = %v, %v", ids, err)
	}
}

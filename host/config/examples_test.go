package config_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/lemctl/lemctl/examples"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/config/configtest"
)

// The example files validate against stand-ins for the product plugins (configtest.Standard;
// the issues that build each plugin replace its stand-in with the real check).
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d example files, want quickstart, cpu-2workers and gpu", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, err := config.LoadFile(context.Background(), file, config.Options{Configurer: configtest.Standard()})
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("warnings: %q", cfg.Warnings)
			}
		})
	}
}

func TestQuickstart(t *testing.T) {
	disk, err := os.ReadFile("../../examples/quickstart.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk, examples.Quickstart) {
		t.Fatal("embedded Quickstart differs from examples/quickstart.toml")
	}
	cfg, err := config.Load(context.Background(), examples.QuickstartName, examples.Quickstart, config.Options{Configurer: configtest.Standard()})
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Workload
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", cfg.Name, "quickstart"},
		{"model", cfg.Model.Ref, "synthetic:gpt2-124m"},
		{"dataset", w.Dataset, "builtin"},
		{"prompts", w.Prompts, 24},
		{"batch", w.BatchSize, 8},
		{"new tokens", w.MaxNewTokens, 32},
		{"min window", w.MinWindowS, 15.0},
		{"cpu", cfg.Launch.Devices.IsCPU(), true},
		{"one worker", cfg.Launch.ProcessesPerDevice, 1},
		{"all cores", cfg.Launch.Threads, 0},
		{"meters auto", cfg.Energy.Meters.Auto, true},
		{"baseline", cfg.Lifecycle.BaselineS, 10.0},
		{"warm-up batches", cfg.Lifecycle.Warmup.MaxBatches, 6},
		{"warm-up seconds", cfg.Lifecycle.Warmup.MaxS, 40.0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

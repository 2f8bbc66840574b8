package config_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/sdk"
)

// standIns sends a product plugin's table to the plugin standing in for it until the product
// plugin exists; other names pass through unchanged.
type standIns struct {
	config.PluginConfigurer
	names map[string]string // "kind/name" → stand-in
}

func (s standIns) ConfigurePlugin(ctx context.Context, plugin string, kind sdk.Kind, table map[string]any) ([]sdk.ConfigError, error) {
	if alt, ok := s.names[string(kind)+"/"+plugin]; ok {
		plugin = alt
	}
	return s.PluginConfigurer.ConfigurePlugin(ctx, plugin, kind, table)
}

var (
	pluginDirOnce sync.Once
	pluginDir     string
	pluginDirErr  error
)

// builtPlugins builds the sdk's example plugins and the product plugins that exist (fsstore,
// openai) into one directory, once per test binary.
func builtPlugins(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds plugin binaries; skipped with -short")
	}
	pluginDirOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lemctl-config-plugins-")
		if err != nil {
			pluginDirErr = err
			return
		}
		pluginDir = dir
		build := func(moduleDir string, pkgs ...string) error {
			args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
			cmd := exec.Command("go", args...) // go test puts its own go first on PATH
			cmd.Dir = moduleDir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go build %v in %s: %v\n%s", pkgs, moduleDir, err, out)
			}
			return nil
		}
		if pluginDirErr = build("../../sdk", "./examples/engine", "./examples/loader", "./examples/meter"); pluginDirErr != nil {
			return
		}
		for _, n := range []string{"engine", "loader", "meter"} {
			if pluginDirErr = os.Rename(filepath.Join(dir, n), filepath.Join(dir, discovery.FilePrefix+"example-"+n)); pluginDirErr != nil {
				return
			}
		}
		if pluginDirErr = build("../../plugins/fsstore", "./cmd/lem-plugin-fsstore"); pluginDirErr != nil {
			return
		}
		pluginDirErr = build("../../plugins/openai", "./cmd/lem-plugin-openai")
	})
	if pluginDirErr != nil {
		t.Fatal(pluginDirErr)
	}
	return pluginDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pluginDir != "" {
		os.RemoveAll(pluginDir)
	}
	os.Exit(code)
}

func catalog(t *testing.T) *discovery.Catalog {
	t.Helper()
	cat, err := discovery.Discover(context.Background(), discovery.Options{Dirs: []string{builtPlugins(t)}, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cat.Close)
	return cat
}

// The examples validate against real plugin processes over the plugin protocol: the product
// plugins that exist (fsstore, openai) and the sdk's example plugins standing in for the others (onnx,
// nvml, rapl) until the issues that build them replace the stand-ins.
func TestExamplesValidateAgainstPlugins(t *testing.T) {
	c := standIns{PluginConfigurer: catalog(t), names: map[string]string{
		"loader/onnx": "example-loader", "engine/onnx": "example-engine",
		"energy/nvml": "example-meter", "energy/rapl": "example-meter",
	}}
	files, _ := filepath.Glob("../../examples/*.toml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, err := config.LoadFile(context.Background(), file, config.Options{Configurer: c})
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.PluginTablesChecked {
				t.Error("plugin tables not checked")
			}
		})
	}
}

// Errors a real plugin reports over RPC land on the lines of its keys.
func TestPluginErrorsOverRPC(t *testing.T) {
	doc := `[model]
plugin = "example-loader"
ref = "example:tiny"
hidden = 30
heads = 4

[engine]
plugin = "example-engine"
token_delay = "1h"

[energy]
meters = ["example-meter", "ipmi"]

[repository]
fsync = "yes"
`
	_, err := config.Load(context.Background(), "rpc.toml", []byte(doc), config.Options{Configurer: catalog(t)})
	if err == nil {
		t.Fatal("accepted")
	}
	got := err.Error()
	for _, want := range []string{
		`rpc.toml:5: model.heads: 4 heads do not divide hidden size 30 (reported by loader plugin "example-loader")`,
		`rpc.toml:9: engine.token_delay: 1h is out of range (reported by engine plugin "example-engine")`,
		`rpc.toml:12: energy.meters: energy plugin "ipmi" is not installed`,
		`rpc.toml:15: repository.fsync: unknown key (reported by repository plugin "fsstore")`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
}

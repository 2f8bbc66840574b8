package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/config/configtest"
)

func mustLoad(t *testing.T, file string, o config.Overrides) *config.Config {
	t.Helper()
	cfg, err := config.Load(context.Background(), "exp.toml", []byte(file), config.Options{Overrides: o, Configurer: configtest.Standard()})
	if err != nil {
		t.Fatalf("load:\n%s\n%v", file, err)
	}
	return cfg
}

func mustHash(t *testing.T, c *config.Config) string {
	t.Helper()
	h, err := config.Hash(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 64 {
		t.Fatalf("hash %q is not hex sha256", h)
	}
	return h
}

const base = `name = "h"
[model]
ref = "synthetic:gpt2-tiny"
[engine]
intra_op_threads = 2
[workload]
batch_size = 8
min_window_s = 15
[launch]
devices = [0, 1]
`

// The hash ignores what differs per invocation.
func TestHashIgnoresPerInvocationFields(t *testing.T) {
	cfg := mustLoad(t, base, config.Overrides{})
	want := mustHash(t, cfg)
	for _, tc := range []struct {
		name string
		edit func(c *config.Config)
	}{
		{"results path", func(c *config.Config) { c.Repository.Path = "/elsewhere/results" }},
		{"sources", func(c *config.Config) { c.Sources = map[string]string{"workload.batch_size": "flag --set"} }},
		{"watchdog", func(c *config.Config) { c.Launch.StallTimeoutS = 3 }},
		{"call deadlines", func(c *config.Config) {
			c.Launch.CallTimeouts = config.CallTimeouts{ControlS: 1, RepositoryS: 2, LoadS: 3, GenerateS: 4}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, base, config.Overrides{})
			tc.edit(c)
			if got := mustHash(t, c); got != want {
				t.Errorf("hash changed: %s → %s", want, got)
			}
		})
	}
}

// The hash changes with anything that changes the measurement.
func TestHashSeesRealChanges(t *testing.T) {
	want := mustHash(t, mustLoad(t, base, config.Overrides{}))
	for _, set := range []string{"workload.batch_size=9", "engine.intra_op_threads=3", "launch.devices=[1, 0]", "workload.decoding.greedy=false", "name=\"other\""} {
		if got := mustHash(t, mustLoad(t, base, config.Overrides{Set: []string{set}})); got == want {
			t.Errorf("--set %s did not change the hash", set)
		}
	}
}

// A value set by --set (or -d, -n) hashes like the same value written in the file; an int
// written for a float key hashes like the float.
func TestHashOverrideEqualsFile(t *testing.T) {
	n := 48
	viaFlags := mustLoad(t, base, config.Overrides{Dataset: "builtin", Prompts: &n, Set: []string{
		"workload.repeats=3", "engine.execution_provider=cpu", "lifecycle.baseline_s=10", `launch.devices=["cpu"]`,
	}})
	inFile := mustLoad(t, `name = "h"
[model]
ref = "synthetic:gpt2-tiny"
[engine]
intra_op_threads = 2
execution_provider = "cpu"
[workload]
batch_size = 8
min_window_s = 15
repeats = 3
prompts = 48
dataset = "builtin"
[launch]
devices = "cpu"
[lifecycle]
baseline_s = 10.0
`, config.Overrides{})
	if a, b := mustHash(t, viaFlags), mustHash(t, inFile); a != b {
		ja, _ := viaFlags.CanonicalJSON()
		jb, _ := inFile.CanonicalJSON()
		t.Errorf("flags and file hash differently:\n%s\n%s", ja, jb)
	}
	if len(viaFlags.Sources) != 6 || len(inFile.Sources) != 0 {
		t.Errorf("sources: flags %v, file %v", viaFlags.Sources, inFile.Sources)
	}
}

// CanonicalJSON has sorted keys and no per-worker fields.
func TestCanonicalJSON(t *testing.T) {
	c := mustLoad(t, base, config.Overrides{})
	c.Repository.Path = "/r"
	b, err := c.CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`"worker"`, `"/r"`, "\n", `"path"`} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("canonical JSON contains %s: %s", bad, b)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(m)
	if !bytes.Equal(again, b) {
		t.Errorf("canonical JSON is not in sorted-key form:\n%s\n%s", b, again)
	}
}

// `config show --output toml` prints a document that loads again to the same hash.
func TestTOMLRoundTrip(t *testing.T) {
	for _, file := range []string{base, minimal, base + "[energy]\nmeters = [\"nvml\"]\ninterval = \"50ms\"\n[energy.nvml]\npower_field = \"average\"\n"} {
		c := mustLoad(t, file, config.Overrides{Set: []string{"workload.seed=7"}})
		var buf bytes.Buffer
		if err := c.WriteTOML(&buf); err != nil {
			t.Fatal(err)
		}
		again := mustLoad(t, buf.String(), config.Overrides{})
		if a, b := mustHash(t, c), mustHash(t, again); a != b {
			t.Errorf("round trip changed the hash:\n%s", buf.String())
		}
	}
}

func TestDevicesJSON(t *testing.T) {
	for _, tc := range []struct {
		d    config.Devices
		json string
	}{
		{config.Devices{"cpu"}, `"cpu"`},
		{config.Devices{"0", "GPU-ab"}, `[0,"GPU-ab"]`},
	} {
		b, err := json.Marshal(tc.d)
		if err != nil || string(b) != tc.json {
			t.Errorf("marshal %v = %s, %v; want %s", tc.d, b, err, tc.json)
		}
		var back config.Devices
		if err := json.Unmarshal(b, &back); err != nil || strings.Join(back, ",") != strings.Join(tc.d, ",") {
			t.Errorf("unmarshal %s = %v, %v", b, back, err)
		}
	}
}

// BenchmarkLoad loads, validates (with the fake plugins) and hashes the quickstart file.
func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile("../../examples/quickstart.toml")
	if err != nil {
		b.Fatal(err)
	}
	c := configtest.Standard()
	for b.Loop() {
		cfg, err := config.Load(context.Background(), "quickstart.toml", data, config.Options{Configurer: c})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := config.Hash(cfg); err != nil {
			b.Fatal(err)
		}
		c.Calls = c.Calls[:0]
	}
}

package aggregate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// keyPaths collects every object key path of a JSON document; array elements add "[]".
func keyPaths(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			keyPaths(c, p, out)
		}
	case []any:
		for _, c := range x {
			keyPaths(c, prefix+"[]", out)
		}
	}
}

// The stable field names (docs/results.md) are all present, with exactly these spellings.
func TestStableKeys(t *testing.T) {
	both := []string{
		"schema_version", "kind", "experiment_id", "config_hash", "config", "provenance",
		"model.ref", "model.sha256", "model.architecture", "model.parameters", "model.synthetic",
		"engine.plugin", "engine.version", "engine.execution_provider",
		"dataset.name", "dataset.sha256", "dataset.prompts",
		"window.start_unix_ns", "window.end_unix_ns", "window.duration_s",
		"workload.requests", "workload.input_tokens", "workload.output_tokens", "workload.batch_size", "workload.repeats",
		"energy.total_j", "energy.static_j", "energy.dynamic_j", "energy.j_per_output_token",
		"energy.dynamic_j_per_output_token", "energy.j_per_request", "energy.tokens_per_j",
		"energy.phases.prefill_j", "energy.phases.decode_j",
		"energy.domains[].id", "energy.domains[].kind", "energy.domains[].scope", "energy.domains[].method",
		"energy.domains[].confidence", "energy.domains[].available", "energy.domains[].reason", "energy.domains[].total_j",
		"energy.domains[].idle_power_w", "energy.domains[].static_j", "energy.domains[].dynamic_j",
		"energy.domains[].resolution_j", "energy.domains[].phases", "energy.domains[].health",
		"memory.peak_bytes", "memory.model_bytes", "flops.total", "flops.per_output_token", "flops.method",
		"validity.valid", "validity.findings", "overhead.meter_cpu_s", "overhead.share", "environment", "repeats",
	}
	for _, s := range []string{"ttft", "itl", "e2e"} {
		for _, f := range []string{"count", "mean", "min", "p50", "p90", "p95", "p99", "max"} {
			both = append(both, "latency_ms."+s+"."+f)
		}
	}
	raw := append([]string{
		"rank", "world_size", "host.hostname", "host.boot_id", "device.kind", "device.index", "device.uuid",
		"device.name", "device.slot", "plugins[].name", "plugins[].version", "plugins[].kinds", "plugins[].sha256",
		"window.start_mono_ns", "window.end_mono_ns", "window.phases",
		"requests[].id", "requests[].input_tokens", "requests[].output_tokens", "requests[].start_mono_ns", "requests[].token_mono_ns",
		"energy.domains[].timeline[].mono_ns", "energy.domains[].timeline[].energy_uj",
	}, both...)
	agg := append([]string{
		"throughput.output_tokens_per_s", "throughput.requests_per_s", "throughput.total_tokens_per_s",
		"partial", "partial_reasons", "ranks", "validity.findings[].code", "validity.findings[].severity",
		"validity.findings[].message", "validity.findings[].rank",
	}, both...)

	check := func(name string, data []byte, want []string) {
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		keyPaths(doc, "", have)
		var missing []string
		for _, k := range want {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s lacks stable keys: %s", name, strings.Join(missing, ", "))
		}
	}
	rawBytes, err := os.ReadFile(filepath.Join("testdata", "results", "raw", "shared-package", "process_1.json"))
	if err != nil {
		t.Fatal(err)
	}
	check("raw result", rawBytes, raw)
	out, err := Run(context.Background(), fixtures(t), "shared-package", Options{})
	if err != nil {
		t.Fatal(err)
	}
	check("aggregate", out.Data, agg)
}

package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sort"

	"github.com/BurntSushi/toml"
)

// Map returns the effective config as nested tables, the same shape as the TOML file: every
// host key with its value, and the plugins' own keys in their sections. Results record it (as
// JSON, under "config"); `config show` prints it.
func (c *Config) Map() map[string]any {
	m := map[string]any{
		"name":   c.Name,
		"model":  MergeTables(c.Model.Options, modelHostKeys(c.Model)),
		"engine": MergeTables(c.Engine.Options, map[string]any{"plugin": c.Engine.Plugin}),
		"workload": map[string]any{
			"dataset":          c.Workload.Dataset,
			"format":           c.Workload.Format,
			"column":           c.Workload.Column,
			"prompts":          int64(c.Workload.Prompts),
			"seed":             int64(c.Workload.Seed),
			"order":            c.Workload.Order,
			"batch_size":       int64(c.Workload.BatchSize),
			"max_input_tokens": int64(c.Workload.MaxInputTokens),
			"max_new_tokens":   int64(c.Workload.MaxNewTokens),
			"repeats":          int64(c.Workload.Repeats),
			"min_window_s":     c.Workload.MinWindowS,
			"arrival":          c.Workload.Arrival,
			"max_concurrency":  int64(c.Workload.MaxConcurrency),
			"requests":         int64(c.Workload.Requests),
			"duration_s":       c.Workload.DurationS,
			"decoding": map[string]any{
				"greedy":      c.Workload.Decoding.Greedy,
				"temperature": c.Workload.Decoding.Temperature,
				"top_k":       int64(c.Workload.Decoding.TopK),
				"top_p":       c.Workload.Decoding.TopP,
				"ignore_eos":  c.Workload.Decoding.IgnoreEOS,
			},
		},
		"launch": map[string]any{
			"devices":              c.Launch.Devices.value(),
			"processes_per_device": int64(c.Launch.ProcessesPerDevice),
			"threads":              int64(c.Launch.Threads),
			"pin_cpus":             c.Launch.PinCPUs,
			"stall_timeout_s":      c.Launch.StallTimeoutS,
			"call_timeouts": map[string]any{
				"control_s":    c.Launch.CallTimeouts.ControlS,
				"repository_s": c.Launch.CallTimeouts.RepositoryS,
				"load_s":       c.Launch.CallTimeouts.LoadS,
				"generate_s":   c.Launch.CallTimeouts.GenerateS,
			},
			"launcher": c.Launch.Launcher,
			"slurm": map[string]any{
				"submit": c.Launch.Slurm.Submit,
				"port":   int64(c.Launch.Slurm.Port),
			},
		},
		"lifecycle": map[string]any{
			"baseline_s":     c.Lifecycle.BaselineS,
			"thermal_wait_s": c.Lifecycle.ThermalWaitS,
			"cooldown_s":     c.Lifecycle.CooldownS,
			"warmup": map[string]any{
				"mode":         c.Lifecycle.Warmup.Mode,
				"batches":      int64(c.Lifecycle.Warmup.Batches),
				"cv_threshold": c.Lifecycle.Warmup.CVThreshold,
				"min_batches":  int64(c.Lifecycle.Warmup.MinBatches),
				"max_batches":  int64(c.Lifecycle.Warmup.MaxBatches),
				"max_s":        c.Lifecycle.Warmup.MaxS,
				"window":       int64(c.Lifecycle.Warmup.Window),
			},
		},
		"repository": MergeTables(c.Repository.Options, map[string]any{"plugin": c.Repository.Plugin, "path": c.Repository.Path}),
		"validity": map[string]any{
			"min_window_s":         c.Validity.MinWindowS,
			"min_counter_updates":  int64(c.Validity.MinCounterUpdates),
			"temperature_drift_c":  c.Validity.TemperatureDriftC,
			"integration_mismatch": c.Validity.IntegrationMismatch,
			"min_window_overlap":   c.Validity.MinWindowOverlap,
			"max_throttle_share":   c.Validity.MaxThrottleShare,
			"max_uncertainty":      c.Validity.MaxUncertainty,
			"max_error_rate":       c.Validity.MaxErrorRate,
		},
	}
	if c.Workload.Rate > 0 {
		m["workload"].(map[string]any)["rate"] = c.Workload.Rate
	}
	energy := map[string]any{"meters": c.Energy.Meters.value(), "interval": c.Energy.Interval}
	if ci := c.Energy.CarbonIntensity; ci != nil {
		energy["carbon_intensity_g_per_kwh"] = ci.GPerKWh
		if ci.Source != "" {
			energy["carbon_intensity_source"] = ci.Source
		}
	}
	for name, t := range c.Energy.Tables {
		energy[name] = maps.Clone(t)
	}
	m["energy"] = energy
	return m
}

// MergeTables returns a copy of base with the keys of over set on it (never nil).
func MergeTables(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	maps.Copy(out, over)
	return out
}

// HashedMap returns what the config hash covers: Map without what differs per invocation (the
// results path) and without the watchdog's launch.stall_timeout_s and the call deadlines of
// launch.call_timeouts, which change no figure. The worker assignment (rank, device slot, thread split, shard) is never part of
// a Config: it travels in the launch spec. Where values came from (Sources) is never part of Map.
func (c *Config) HashedMap() map[string]any {
	m := c.Map()
	if repo, ok := m["repository"].(map[string]any); ok {
		delete(repo, "path")
	}
	// The watchdog's limit decides when a hung run is stopped, never what a run measures.
	if l, ok := m["launch"].(map[string]any); ok {
		delete(l, "stall_timeout_s")
		delete(l, "call_timeouts")
		// How the workers were started changes no figure either.
		delete(l, "launcher")
		delete(l, "slurm")
	}
	// Static batches use none of the keys of a constant or poisson load, nor the error rate that
	// bounds its failed requests: a batch config leaves them out, so that configs written before
	// these keys existed keep their hash.
	if !c.Workload.OpenLoop() {
		if w, ok := m["workload"].(map[string]any); ok {
			for _, k := range []string{"arrival", "rate", "max_concurrency", "requests", "duration_s"} {
				delete(w, k)
			}
		}
		if v, ok := m["validity"].(map[string]any); ok {
			delete(v, "max_error_rate")
		}
	}
	return m
}

// CanonicalJSON is the JSON that Hash hashes: HashedMap with sorted keys, no insignificant
// space, no HTML escaping.
func (c *Config) CanonicalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c.HashedMap()); err != nil {
		return nil, fmt.Errorf("config hash: encode canonical JSON: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Hash is the config hash (docs/architecture.md, "Configuration"): the hex sha256 of CanonicalJSON. `lemctl run`
// records it and `lemctl config show` prints it; both call this function.
func Hash(c *Config) (string, error) {
	b, err := c.CanonicalJSON()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// WriteTOML writes the effective config as a TOML document that Load accepts and that hashes
// the same.
func (c *Config) WriteTOML(w io.Writer) error {
	enc := toml.NewEncoder(w)
	enc.Indent = ""
	if err := enc.Encode(c.Map()); err != nil {
		return fmt.Errorf("encode config as TOML: %w", err)
	}
	return nil
}

// SourceLines lists the overridden keys as "key = source", sorted, for display.
func (c *Config) SourceLines() []string {
	keys := make([]string, 0, len(c.Sources))
	for k := range c.Sources {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + ": " + c.Sources[k]
	}
	return out
}

// modelHostKeys are [model]'s host keys in the canonical form; precision only when set (not
// "auto"), so configs written before the key existed keep their hash.
func modelHostKeys(m Model) map[string]any {
	keys := map[string]any{"plugin": m.Plugin, "ref": m.Ref}
	if m.Precision != "" && m.Precision != "auto" {
		keys["precision"] = m.Precision
	}
	return keys
}

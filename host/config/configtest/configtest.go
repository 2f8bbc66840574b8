// Package configtest provides a fake config.PluginConfigurer for tests: a fixed set of
// installed plugins whose schemas are checked with the sdk's own ValidateConfig, as a real
// plugin's Configure would. It must never be used outside tests.
package configtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/sdk"
)

// Plugin is one fake installed plugin.
type Plugin struct {
	Name   string
	Kinds  []sdk.Kind
	Schema []sdk.ConfigKey
	// Fail, when set, is returned as the error of every ConfigurePlugin call to this plugin.
	Fail error
}

// Configurer is a fake PluginConfigurer over a fixed set of plugins. It records every call.
type Configurer struct {
	Plugins []Plugin

	mu    sync.Mutex
	Calls []Call
}

// Call is one recorded ConfigurePlugin call.
type Call struct {
	Plugin string
	Kind   sdk.Kind
	Table  map[string]any
}

// ConfigurePlugin checks table against the named plugin's schema; the table crosses a JSON
// round trip first, as it does on the way to a real plugin.
func (c *Configurer) ConfigurePlugin(ctx context.Context, plugin string, kind sdk.Kind, table map[string]any) ([]sdk.ConfigError, error) {
	c.mu.Lock()
	c.Calls = append(c.Calls, Call{Plugin: plugin, Kind: kind, Table: table})
	c.mu.Unlock()
	var installed []string
	for _, p := range c.Plugins {
		if !serves(p, kind) {
			continue
		}
		installed = append(installed, p.Name)
		if p.Name != plugin {
			continue
		}
		if p.Fail != nil {
			return nil, p.Fail
		}
		b, err := json.Marshal(table)
		if err != nil {
			return nil, fmt.Errorf("encode %s table: %w", plugin, err)
		}
		raw := map[string]any{}
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("decode %s table: %w", plugin, err)
		}
		_, errs := sdk.ValidateConfig(p.Schema, raw)
		return errs, nil
	}
	sort.Strings(installed)
	return nil, &config.PluginNotInstalledError{Plugin: plugin, Kind: kind, Installed: installed}
}

func serves(p Plugin, k sdk.Kind) bool {
	for _, have := range p.Kinds {
		if have == k {
			return true
		}
	}
	return false
}

// Standard returns a configurer with stand-ins for the product plugins: onnx and openai (loader
// and engine), fsstore (repository), nvml and rapl (energy). The schemas are plausible, not the
// real plugins' (the issues that build those plugins add the real check).
func Standard() *Configurer {
	return &Configurer{Plugins: []Plugin{
		{Name: "onnx", Kinds: []sdk.Kind{sdk.KindLoader, sdk.KindEngine}, Schema: []sdk.ConfigKey{
			{Key: "intra_op_threads", Type: sdk.TypeInt, Default: 0, Min: sdk.Bound(0)},
			{Key: "execution_provider", Type: sdk.TypeString, Default: "cpu", Enum: []string{"cpu", "cuda"}},
			{Key: "cache_dir", Type: sdk.TypeString},
		}},
		{Name: "fsstore", Kinds: []sdk.Kind{sdk.KindRepository}, Schema: []sdk.ConfigKey{
			{Key: "path", Type: sdk.TypeString},
		}},
		{Name: "nvml", Kinds: []sdk.Kind{sdk.KindEnergy}, Schema: []sdk.ConfigKey{
			{Key: "interval", Type: sdk.TypeDuration, Default: "20ms", Min: sdk.Bound(0.001), Max: sdk.Bound(1)},
			{Key: "power_field", Type: sdk.TypeString, Default: "instant", Enum: []string{"instant", "average"}},
			{Key: "allowed_pids", Type: sdk.TypeInts},
		}},
		{Name: "openai", Kinds: []sdk.Kind{sdk.KindLoader, sdk.KindEngine}, Schema: []sdk.ConfigKey{
			{Key: "base_url", Type: sdk.TypeString},
			{Key: "model", Type: sdk.TypeString},
			{Key: "api", Type: sdk.TypeString, Default: "completions", Enum: []string{"completions", "chat"}},
			{Key: "api_key_env", Type: sdk.TypeString},
			{Key: "request_timeout", Type: sdk.TypeDuration, Default: "10m0s", Min: sdk.Bound(0.001), Max: sdk.Bound(86400)},
			{Key: "return_token_ids", Type: sdk.TypeBool, Default: true},
			{Key: "tokenizer", Type: sdk.TypeString, Default: "server"},
		}},
		{Name: "rapl", Kinds: []sdk.Kind{sdk.KindEnergy}, Schema: []sdk.ConfigKey{
			{Key: "interval", Type: sdk.TypeDuration, Default: "10ms"},
			{Key: "zones", Type: sdk.TypeStrings},
		}},
	}}
}

package runcmd

import (
	"testing"

	"github.com/lemctl/lemctl/sdk"
)

// TestMeterInterval: the parent settles each meter's Start interval from the meter's own schema:
// 0 (the meter's configured interval) when its table sets its interval key, whatever the key is
// called, else [energy].interval.
func TestMeterInterval(t *testing.T) {
	const energy = int64(50e6)
	info := func(keys ...sdk.ConfigKey) sdk.Info { return sdk.Info{ConfigSchema: keys} }
	dur := func(k string) sdk.ConfigKey { return sdk.ConfigKey{Key: k, Type: sdk.TypeDuration} }
	tests := []struct {
		name  string
		info  sdk.Info
		table map[string]any
		want  int64
	}{
		{"own interval key set", info(dur("interval")), map[string]any{"interval": "5ms"}, 0},
		{"differently named key set", info(dur("sample_interval")), map[string]any{"sample_interval": "5ms"}, 0},
		{"key not set", info(dur("interval")), map[string]any{}, energy},
		{"a non-interval duration", info(dur("timeout")), map[string]any{"timeout": "1s"}, energy},
		{"a string key named interval", info(sdk.ConfigKey{Key: "interval", Type: sdk.TypeString}), map[string]any{"interval": "x"}, energy},
		{"no schema", info(), map[string]any{"interval": "5ms"}, energy},
	}
	for _, tc := range tests {
		if got := meterInterval(tc.info, tc.table, energy); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

package runcmd

import (
	"testing"

	"github.com/lemctl/lemctl/sdk"
)

// TestMeterInterval: the parent settles each meter's Start interval from the meter's own schema:
// 0 (the meter's configured interval) when its table sets the key its schema marks
// SamplingInterval, whatever the key is called, else [energy].interval. A key is never taken
// for the interval by its name.
func TestMeterInterval(t *testing.T) {
	const energy = int64(50e6)
	info := func(keys ...sdk.ConfigKey) sdk.Info { return sdk.Info{ConfigSchema: keys} }
	marked := func(k string) sdk.ConfigKey {
		return sdk.ConfigKey{Key: k, Type: sdk.TypeDuration, SamplingInterval: true}
	}
	dur := func(k string) sdk.ConfigKey { return sdk.ConfigKey{Key: k, Type: sdk.TypeDuration} }
	tests := []struct {
		name  string
		info  sdk.Info
		table map[string]any
		want  int64
	}{
		{"marked key set", info(marked("interval")), map[string]any{"interval": "5ms"}, 0},
		{"differently named marked key set", info(dur("timeout"), marked("poll")), map[string]any{"poll": "5ms"}, 0},
		{"marked key not set", info(marked("interval")), map[string]any{}, energy},
		{"an unmarked key named interval", info(dur("interval")), map[string]any{"interval": "5ms"}, energy},
		{"another duration set beside the marked key", info(dur("timeout"), marked("interval")), map[string]any{"timeout": "1s"}, energy},
		{"no schema", info(), map[string]any{"interval": "5ms"}, energy},
	}
	for _, tc := range tests {
		if got := meterInterval(tc.info, tc.table, energy); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
